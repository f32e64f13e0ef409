"""Cluster-wide invoice runs: Ray tasks over tenant batches, each invoicing its tenants through
the same Invoicer as the API. A run is idempotent and resumable because an invoice is unique per
tenant and period in PostgreSQL: a re-run (or a retried task) finds the invoices already made and
makes only the missing ones."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, NotRequired, TypedDict

import ray
from redis.asyncio import Redis
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors import usage_store
from actors.layout import LayoutView
from actors.live_usage import ShardDirectory
from infra import metrics, redis_client, run_store
from infra.database import create_engine
from infra.pricing_cache import PricingCache
from infra.schema import tenants
from infra.settings import Settings
from invoicing.collector import collected_after
from invoicing.config import InvoicingConfig
from invoicing.service import Invoicer, Outcome
from pricing.periods import Period

MAX_FAILURES_KEPT = 100  # on the run's row; the rest are counted in its outcomes
KEPT_CONFIGS = 4  # a worker's engines kept between batches, one per database it invoiced for


class TenantResult(TypedDict):
    """One tenant's result in a batch (JSON: failed ones are kept on the run's row)."""

    tenant_id: str
    outcome: str  # created / existing / failed
    error: NotRequired[str]  # failed
    invoice_id: NotRequired[str]  # the others
    number: NotRequired[str | None]  # None: a draft
    currency: NotRequired[str]
    total: NotRequired[str]  # a decimal string


@dataclass
class RunSummary:
    period: Period
    outcomes: Counter[str] = field(default_factory=Counter)  # created / existing / failed
    totals: dict[str, Decimal] = field(default_factory=dict)  # currency -> sum of invoice totals
    failures: list[TenantResult] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    def progress(self, total: int) -> dict[str, object]:
        """The invoice_runs columns that show this summary."""
        return {
            "tenants_total": total,
            "tenants_done": self.done,
            "outcomes": dict(self.outcomes),
            "totals": {currency: format(amount, "f") for currency, amount in self.totals.items()},
            "failures": self.failures[:MAX_FAILURES_KEPT],
        }

    def add(self, result: TenantResult) -> None:
        self.outcomes[result["outcome"]] += 1
        if result["outcome"] == "failed":
            self.failures.append(result)
        else:
            currency = result["currency"]
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + Decimal(result["total"])


@ray.remote(max_retries=3)
def invoice_batch(
    config: InvoicingConfig, tenant_ids: list[str], period: Period, finalize: bool, pdfs: bool
) -> list[TenantResult]:
    return run_batch(config, tenant_ids, period, finalize, pdfs)


def run_batch(
    config: InvoicingConfig, tenant_ids: list[str], period: Period, finalize: bool, pdfs: bool
) -> list[TenantResult]:
    """Invoice one batch in this process, on its batch loop (see `_BatchWorker`), with the
    garbage collector paused until it is done (see invoicing/collector.py)."""
    with collected_after():
        return _BatchWorker.loop().run_until_complete(_invoice_batch(config, tenant_ids, period, finalize, pdfs))


async def _invoice_batch(
    config: InvoicingConfig, tenant_ids: list[str], period: Period, finalize: bool, pdfs: bool
) -> list[TenantResult]:
    worker = await _BatchWorker.of(config)
    await worker.layout.refresh()  # a resharding between batches is seen by the next one
    invoicer = worker.invoicer
    # The batch is invoiced in one transaction: one read of each kind for all its tenants,
    # and its numbers taken from the issuer's counter in one step, so they stay gapless.
    outcomes = await invoicer.invoice_many(tenant_ids, period, actor="invoice-run", finalize=finalize)
    results = [_result(tenant_id, outcomes[tenant_id]) for tenant_id in tenant_ids]
    if pdfs:
        for result in results:  # after the transaction, off the numbering lock
            if result.get("number"):
                await invoicer.pdf(uuid.UUID(result["invoice_id"]))
    return results


@dataclass
class _BatchWorker:
    """What a process running batch after batch (a Ray worker) keeps between them: one event loop,
    and per config one engine, Redis client, pricing cache and shard directory. With an engine per
    batch, every batch opened new connections and compiled each of its ~20 statements again
    (SQLAlchemy caches compiled statements per engine): a tenth of a 100-tenant batch's time."""

    invoicer: Invoicer
    layout: LayoutView
    redis: Redis

    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None
    _kept: ClassVar[dict[InvoicingConfig, _BatchWorker]] = {}

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        if cls._loop is None:
            cls._loop = asyncio.new_event_loop()
        return cls._loop

    @classmethod
    async def of(cls, config: InvoicingConfig) -> _BatchWorker:
        kept = cls._kept.pop(config, None) or cls._start(config)
        cls._kept[config] = kept  # the most recently used last
        while len(cls._kept) > KEPT_CONFIGS:  # another database (tests): the oldest one goes
            await cls._kept.pop(next(iter(cls._kept))).close()
        return kept

    @classmethod
    def _start(cls, config: InvoicingConfig) -> _BatchWorker:
        engine = create_engine(config.database_url, pool_size=4)
        redis = redis_client.connect(config.redis)  # follows a Sentinel failover, as the API does
        layout = usage_store.layout_view(engine, config.redis_prefix, config.shards)
        cache, directory = PricingCache(engine, redis, config.redis_prefix), ShardDirectory(config.redis_prefix, layout)
        return cls(Invoicer(engine, cache, directory, config), layout, redis)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.invoicer.engine.dispose()


def _result(tenant_id: str, outcome: Outcome) -> TenantResult:
    invoice = outcome.invoice
    if isinstance(invoice, Exception):
        error = f"{type(invoice).__name__}: {invoice}"
        return {"tenant_id": tenant_id, "outcome": "failed", "error": error}
    return {
        "tenant_id": tenant_id,
        "outcome": "created" if outcome.created else "existing",
        "invoice_id": str(invoice.invoice_id),
        "number": invoice.number,
        "currency": invoice.currency,
        "total": str(invoice.total),
    }


async def _tenant_ids(engine: AsyncEngine, created_before: datetime | None) -> list[str]:
    query = select(tenants.c.tenant_id).order_by(tenants.c.tenant_id)
    if created_before is not None:
        query = query.where(tenants.c.created_at < created_before)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).scalars())


async def execute_run(
    engine: AsyncEngine,
    settings: Settings,
    run: Row[Any],
    owner: str,
    *,
    batch_size: int = 50,
    progress: Callable[[int, int], None] | None = None,
    tenant_ids: list[str] | None = None,
) -> RunSummary:
    """Carry out a claimed run (a row of invoice_runs) on Ray tasks, recording its progress after
    every batch. Scheduled runs invoice the tenants that existed before the period ended; other
    runs every tenant (or `tenant_ids`). Raises LostLease if another owner takes the run over."""
    period = Period(run.period_start, run.period_end)
    created_before = run.period_end if run.trigger == "schedule" else None
    ids = tenant_ids if tenant_ids is not None else await _tenant_ids(engine, created_before)
    summary = RunSummary(period)

    async def record(**final: object) -> None:
        async with engine.begin() as conn:
            await run_store.record_progress(
                conn, run.run_id, owner, settings.run_lease_s, **summary.progress(len(ids)), **final
            )

    await record()
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    config = InvoicingConfig.of(settings)
    batch_of = {
        asyncio.wrap_future(
            invoice_batch.remote(config, batch, period, run.finalize, run.pdfs).future()
        ): batch
        for batch in batches
    }
    pending = set(batch_of)
    try:
        while pending:
            # The timeout keeps the heartbeat going while a slow batch is still out.
            done, pending = await asyncio.wait(
                pending, timeout=settings.run_lease_s / 3, return_when=asyncio.FIRST_COMPLETED
            )
            for finished in done:
                for result in _batch_results(finished, batch_of[finished]):
                    summary.add(result)
                    metrics.invoice_run_tenants.inc(
                        tags={"trigger": run.trigger, "outcome": result["outcome"]}
                    )
            metrics.invoice_run_progress.set(summary.done / max(len(ids), 1), tags={"trigger": run.trigger})
            await record()
            if progress:
                progress(summary.done, len(ids))
    except run_store.LostLease:
        raise
    except Exception as error:
        await record(status="failed", error=f"{type(error).__name__}: {error}")
        raise
    await record(status="completed")
    return summary


def _batch_results(finished: asyncio.Future[list[TenantResult]], batch: list[str]) -> list[TenantResult]:
    """A batch's results; a batch that failed after Ray's retries fails its tenants (the run goes
    on, and a re-run picks them up) rather than the whole month."""
    try:
        return finished.result()
    except Exception as error:  # noqa: BLE001 - a bug or an outage in one batch, reported per tenant
        reason = f"batch failed: {type(error).__name__}: {error}"[:500]
        return [{"tenant_id": tenant_id, "outcome": "failed", "error": reason} for tenant_id in batch]


def run_period(
    settings: Settings,
    period: Period,
    batch_size: int = 50,
    finalize: bool = True,
    pdfs: bool = True,
    progress: Callable[[int, int], None] | None = None,
    tenant_ids: list[str] | None = None,
    trigger: str = "cli",
) -> RunSummary:
    """Start and carry out a run in this process (the caller is connected to Ray): every
    registered tenant, or just `tenant_ids`, for the period. The run shows in the API."""

    async def start_and_execute() -> RunSummary:
        engine = create_engine(settings.resolved_database_url(), pool_size=2)
        owner = f"{trigger}:{socket.gethostname()}:{os.getpid()}"
        try:
            async with engine.begin() as conn:
                run = await run_store.create(
                    conn, period, trigger, finalize=finalize, pdfs=pdfs, owner=owner, lease_s=settings.run_lease_s
                )
            return await execute_run(
                engine, settings, run, owner, batch_size=batch_size, progress=progress, tenant_ids=tenant_ids
            )
        finally:
            await engine.dispose()

    return asyncio.run(start_and_execute())
