"""Cluster-wide invoice runs: Ray tasks over tenant batches, each invoicing its tenants through
the same Invoicer as the API. A run is idempotent and resumable because an invoice is unique per
tenant and period in PostgreSQL: a re-run (or a retried task) finds the invoices already made and
makes only the missing ones."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import ray
from redis.asyncio import Redis
from sqlalchemy import select

from actors.live_usage import ShardDirectory, UsageNotSettled
from infra import invoice_store
from infra.database import create_engine
from infra.pricing_cache import PricingCache
from infra.schema import tenants
from infra.settings import Settings
from invoicing.service import Invoicer, TenantNotFound
from pricing.errors import PricingError
from pricing.periods import Period

# What one tenant's failure may be; anything else is a bug and fails the task (Ray retries it).
TENANT_ERRORS = (TenantNotFound, UsageNotSettled, PricingError)
CONCURRENT_TENANTS = 8


@dataclass
class RunSummary:
    period: Period
    outcomes: Counter = field(default_factory=Counter)  # created / existing / failed
    totals: dict[str, Decimal] = field(default_factory=dict)  # currency -> sum of invoice totals
    failures: list[dict] = field(default_factory=list)

    def add(self, result: dict) -> None:
        self.outcomes[result["outcome"]] += 1
        if result["outcome"] == "failed":
            self.failures.append(result)
        else:
            currency = result["currency"]
            self.totals[currency] = self.totals.get(currency, Decimal(0)) + Decimal(result["total"])


@ray.remote(max_retries=3)
def invoice_batch(
    settings: Settings, tenant_ids: list[str], period: Period, finalize: bool, pdfs: bool
) -> list[dict]:
    return asyncio.run(_invoice_batch(settings, tenant_ids, period, finalize, pdfs))


async def _invoice_batch(
    settings: Settings, tenant_ids: list[str], period: Period, finalize: bool, pdfs: bool
) -> list[dict]:
    engine = create_engine(settings.database_url, pool_size=CONCURRENT_TENANTS)
    redis = Redis.from_url(settings.redis_url)
    invoicer = Invoicer(
        engine, PricingCache(engine, redis, settings.redis_prefix), ShardDirectory(settings.shards), settings
    )
    # An invoice is mostly waiting on PostgreSQL and the shards, so a task keeps several tenants
    # in flight; numbering still queues on the issuer's counter row, so numbers stay gapless.
    gate = asyncio.Semaphore(CONCURRENT_TENANTS)

    async def one(tenant_id: str) -> dict:
        async with gate:
            return await _invoice_tenant(invoicer, engine, tenant_id, period, finalize, pdfs)

    try:
        return list(await asyncio.gather(*(one(tenant_id) for tenant_id in tenant_ids)))
    finally:
        await redis.aclose()
        await engine.dispose()


async def _invoice_tenant(
    invoicer: Invoicer, engine, tenant_id: str, period: Period, finalize: bool, pdfs: bool
) -> dict:
    try:
        row, created = await invoicer.invoice(tenant_id, period, actor="invoice-run")
        if finalize and row.status == "draft":
            async with engine.begin() as conn:
                await invoice_store.finalize(conn, row.invoice_id)
                row = await invoice_store.find(conn, row.invoice_id)
        if pdfs and row.status != "draft":
            await invoicer.pdf(row.invoice_id)  # rendered once, after the numbering lock
    except TENANT_ERRORS as error:
        return {"tenant_id": tenant_id, "outcome": "failed", "error": f"{type(error).__name__}: {error}"}
    return {
        "tenant_id": tenant_id,
        "outcome": "created" if created else "existing",
        "invoice_id": str(row.invoice_id),
        "number": row.number,
        "currency": row.currency,
        "total": str(row.total),
    }


async def _tenant_ids(settings: Settings) -> list[str]:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(
                (await conn.execute(select(tenants.c.tenant_id).order_by(tenants.c.tenant_id))).scalars()
            )
    finally:
        await engine.dispose()


def run_period(
    settings: Settings,
    period: Period,
    batch_size: int = 50,
    finalize: bool = True,
    pdfs: bool = True,
    progress: Callable[[int, int], None] | None = None,
    tenant_ids: list[str] | None = None,
) -> RunSummary:
    """Invoice every registered tenant (or just `tenant_ids`) for the period; the caller is
    connected to Ray."""
    tenant_ids = tenant_ids if tenant_ids is not None else asyncio.run(_tenant_ids(settings))
    batches = [tenant_ids[i : i + batch_size] for i in range(0, len(tenant_ids), batch_size)]
    pending = [invoice_batch.remote(settings, batch, period, finalize, pdfs) for batch in batches]
    summary, done = RunSummary(period), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for result in ray.get(ready[0]):
            summary.add(result)
            done += 1
        if progress:
            progress(done, len(tenant_ids))
    return summary
