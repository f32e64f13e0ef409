"""SQL for invoice runs: a row per run, with its progress, so the API can show it and another
process can take it over.

A run is owned by whoever last claimed it, and stays theirs while they heartbeat. Each heartbeat
extends `lease_until` by the owner's own lease, so owners configured with different leases (a CLI,
a Ray job, the replicas) judge each other by the holder's terms. A run whose lease ran out (a
killed CLI, a crashed replica) is claimed again by the next scheduler tick; running it again is safe because invoicing a tenant is idempotent.
Claims use FOR UPDATE SKIP LOCKED, so several replicas never take the same run at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal, overload

from sqlalchemy import ColumnElement, Row, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import invoice_runs
from pricing.periods import Period


class LostLease(RuntimeError):
    """Another owner has claimed the run (ours was presumed dead); stop working on it."""


@overload
async def create(  # type: ignore[overload-overlap]  # "schedule" is a str; it alone may give None
    conn: AsyncConnection,
    period: Period,
    trigger: Literal["schedule"],
    *,
    finalize: bool = True,
    pdfs: bool = True,
    owner: str | None = None,
    lease_s: float = 60.0,
) -> Row[Any] | None: ...


@overload
async def create(
    conn: AsyncConnection,
    period: Period,
    trigger: str,
    *,
    finalize: bool = True,
    pdfs: bool = True,
    owner: str | None = None,
    lease_s: float = 60.0,
) -> Row[Any]: ...


async def create(
    conn: AsyncConnection,
    period: Period,
    trigger: str,
    *,
    finalize: bool = True,
    pdfs: bool = True,
    owner: str | None = None,
    lease_s: float = 60.0,
) -> Row[Any] | None:
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
        "lease_until": None if owner is None else _lease_end(lease_s),
        "started_at": None if owner is None else func.now(),
    }
    statement = insert(invoice_runs).values(**values)
    if trigger == "schedule":
        statement = statement.on_conflict_do_nothing(
            index_elements=["period_start", "period_end"], index_where=invoice_runs.c.trigger == "schedule"
        )
    # RETURNING a whole table: SQLAlchemy types the result as Any.
    created: Row[Any] | None = (await conn.execute(statement.returning(invoice_runs))).first()
    return created


async def claim(conn: AsyncConnection, owner: str, lease_s: float) -> Row[Any] | None:
    """The oldest pending run, or a running one whose owner's lease ran out, now `owner`'s (for
    `lease_s`); or None."""
    candidate = (
        select(invoice_runs.c.run_id)
        .where(
            or_(
                invoice_runs.c.status == "pending",
                (invoice_runs.c.status == "running") & (invoice_runs.c.lease_until < func.now()),
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
            lease_until=_lease_end(lease_s),
            started_at=func.coalesce(invoice_runs.c.started_at, func.now()),
        )
        .returning(invoice_runs)
    )
    claimed: Row[Any] | None = (await conn.execute(statement)).first()
    return claimed


async def record_progress(
    conn: AsyncConnection, run_id: uuid.UUID, owner: str, lease_s: float, **progress: object
) -> None:
    """Heartbeat with progress (tenants_total, tenants_done, outcomes, totals, failures, or a
    final status), holding the run `lease_s` longer. Raises LostLease when the run is no longer
    `owner`'s."""
    values = {"heartbeat_at": func.now(), "lease_until": _lease_end(lease_s), **progress}
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


def _lease_end(lease_s: float) -> ColumnElement[Any]:
    return func.now() + timedelta(seconds=lease_s)


async def find(conn: AsyncConnection, run_id: uuid.UUID) -> Row[Any] | None:
    return (await conn.execute(select(invoice_runs).where(invoice_runs.c.run_id == run_id))).first()


async def recent(conn: AsyncConnection, limit: int = 50, since: datetime | None = None) -> list[Row[Any]]:
    query = select(invoice_runs).order_by(invoice_runs.c.created_at.desc()).limit(limit)
    if since is not None:
        query = query.where(invoice_runs.c.created_at >= since)
    return list(await conn.execute(query))
