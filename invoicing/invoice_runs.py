"""Invoice runs asked for (the API) and read back with their progress. A run asked for here is
pending until a replica's scheduler claims it (invoicing/scheduler.py) and carries it out on Ray
tasks (invoicing/run.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import run_store
from pricing.errors import InvalidField
from pricing.periods import Period


@dataclass(frozen=True, slots=True)
class InvoiceRun:
    run_id: uuid.UUID
    period: Period
    trigger: str  # schedule, api, cli
    status: str  # pending, running, done, failed
    finalize: bool
    pdfs: bool
    owner: str | None
    tenants_total: int | None  # None until the run has listed its tenants
    tenants_done: int
    outcomes: Any  # JSON kept by the run (invoicing/run.py): counts by outcome
    totals: Any  # invoiced amounts by currency
    failures: Any  # [{tenant_id, error}], the first ones
    error: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> InvoiceRun:
        return cls(
            run_id=row.run_id,
            period=Period(row.period_start, row.period_end),
            trigger=row.trigger,
            status=row.status,
            finalize=row.finalize,
            pdfs=row.pdfs,
            owner=row.owner,
            tenants_total=row.tenants_total,
            tenants_done=row.tenants_done,
            outcomes=row.outcomes,
            totals=row.totals,
            failures=row.failures,
            error=row.error,
            created_at=row.created_at,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            finished_at=row.finished_at,
        )


async def request_run(engine: AsyncEngine, month: Period, *, finalize: bool, pdfs: bool) -> InvoiceRun:
    """A pending run for a month that has ended. Raises InvalidField("period") for one that has not."""
    if month.end > datetime.now(UTC):
        raise InvalidField("period", f"{month.start:%Y-%m} has not ended yet")
    async with engine.begin() as conn:
        row = await run_store.create(conn, month, "api", finalize=finalize, pdfs=pdfs)
    return InvoiceRun.of(row)


async def recent_runs(engine: AsyncEngine, limit: int) -> tuple[InvoiceRun, ...]:
    """The latest runs, newest first."""
    async with engine.connect() as conn:
        rows = await run_store.recent(conn, limit)
    return tuple(InvoiceRun.of(row) for row in rows)


async def find_run(engine: AsyncEngine, run_id: uuid.UUID) -> InvoiceRun | None:
    async with engine.connect() as conn:
        row = await run_store.find(conn, run_id)
    return None if row is None else InvoiceRun.of(row)
