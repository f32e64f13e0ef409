"""SQL for invoice runs: a row per run, with its progress, so the API can show it and another
process can take it over.

A run is owned by whoever last claimed it, and stays theirs while they heartbeat. A run whose
owner has been silent longer than the lease (a killed CLI, a crashed replica) is claimed again
by the next scheduler tick; running it again is safe because invoicing a tenant is idempotent.
Claims use FOR UPDATE SKIP LOCKED, so several replicas never take the same run at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import invoice_runs
from pricing.periods import Period


class LostLease(RuntimeError):
    """Another owner has claimed the run (ours was presumed dead); stop working on it."""


async def create(
    conn: AsyncConnection,
    period: Period,
    trigger: str,
    *,
    finalize: bool = True,
    pdfs: bool = True,
    owner: str | None = None,
):
    """A new run: pending, or running under `owner`. For the schedule, the period's one run, or
    None when it exists already (another replica made it, or it ran)."""
    values = {
        "run_id": uuid.uuid4(),
        "period_start": period.start,
        "period_end": period.end,
        "trigger": trigger,
        "status": "pending" if owner is None else "running",
        "finalize": finalize,
        "pdfs": pdfs,
        "owner": owner,
        "heartbeat_at": None if owner is None else func.now(),
        "started_at": None if owner is None else func.now(),
    }
    statement = insert(invoice_runs).values(**values)
    if trigger == "schedule":
        statement = statement.on_conflict_do_nothing(
            index_elements=["period_start", "period_end"], index_where=invoice_runs.c.trigger == "schedule"
        )
    return (await conn.execute(statement.returning(invoice_runs))).first()


async def claim(conn: AsyncConnection, owner: str, lease_s: float):
    """The oldest pending run, or a running one whose owner went silent, now `owner`'s; or None."""
    stale = func.now() - timedelta(seconds=lease_s)
    candidate = (
        select(invoice_runs.c.run_id)
        .where(
            or_(
                invoice_runs.c.status == "pending",
                (invoice_runs.c.status == "running") & (invoice_runs.c.heartbeat_at < stale),
            )
        )
        .order_by(invoice_runs.c.created_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(invoice_runs)
        .where(invoice_runs.c.run_id == candidate)
        .values(
            status="running",
            owner=owner,
            heartbeat_at=func.now(),
            started_at=func.coalesce(invoice_runs.c.started_at, func.now()),
        )
        .returning(invoice_runs)
    )
    return (await conn.execute(statement)).first()


async def record_progress(conn: AsyncConnection, run_id: uuid.UUID, owner: str, **progress: object) -> None:
    """Heartbeat with progress (tenants_total, tenants_done, outcomes, totals, failures, or a
    final status). Raises LostLease when the run is no longer `owner`'s."""
    values = {"heartbeat_at": func.now(), **progress}
    if progress.get("status") in ("completed", "failed"):
        values["finished_at"] = func.now()
    updated = await conn.execute(
        update(invoice_runs)
        .where(invoice_runs.c.run_id == run_id, invoice_runs.c.owner == owner)
        .values(**values)
        .returning(invoice_runs.c.run_id)
    )
    if updated.first() is None:
        raise LostLease(f"run {run_id} is no longer {owner}'s")


async def find(conn: AsyncConnection, run_id: uuid.UUID):
    return (await conn.execute(select(invoice_runs).where(invoice_runs.c.run_id == run_id))).first()


async def recent(conn: AsyncConnection, limit: int = 50, since: datetime | None = None) -> list:
    query = select(invoice_runs).order_by(invoice_runs.c.created_at.desc()).limit(limit)
    if since is not None:
        query = query.where(invoice_runs.c.created_at >= since)
    return list(await conn.execute(query))
