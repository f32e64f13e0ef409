"""Usage forecasting over every tenant: Ray tasks over tenant batches (as invoice runs are), each
reading its tenants' daily usage with one parameterised query, fitting a model per meter,
backtesting it, projecting the month-end invoice, and storing its forecasts. A series' forecast
depends on that series alone, so the Ray path and the in-process path give the same numbers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import ray
from sqlalchemy import Text, cast, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from forecasting import data, model_store, projection
from forecasting.features import HORIZON
from forecasting.tables import forecast_models, invoice_projections, usage_forecasts
from forecasting.usage_model import (
    ALPHA,
    COVERAGE,
    MODEL_NAME,
    Backtest,
    SeriesModel,
    backtest_tenant,
    fit_tenant,
    summarise,
)
from infra.database import create_engine
from infra.pricing_store import catalog_terms, load_catalog
from infra.schema import tenant_pricing, tenants
from infra.settings import Settings
from pricing.catalog import Catalog
from pricing.errors import InvalidSettings
from pricing.json_fields import decimal_json
from pricing.meters import METERS
from pricing.tenant_pricing import TenantPricing

# 39 weeks: the fit (a trend and its changepoint) and, in the backtest, 30 days after. Read more
# weeks, a trend and weekday effects are known better: MASE 0.823 -> 0.815 on average over the
# eight generated histories of bench/forecast.py against 26 weeks, for 20% more CPU.
HISTORY_DAYS = 273
BOUNDS = ("quantity", "lower", "upper")


@dataclass(frozen=True)
class UsageJob:
    """What every batch of a run does; sent to the Ray tasks."""

    version: str
    origin: date  # the first forecast day; the history is the days before it
    horizon: int = HORIZON
    history_days: int = HISTORY_DAYS
    backtest: bool = True
    store: bool = True

    @property
    def first(self) -> date:
        return self.origin - timedelta(days=self.history_days)

    def weekdays(self) -> np.ndarray:
        return (np.arange(self.history_days + self.horizon) + self.first.weekday()) % 7


@dataclass(repr=False)  # arrays: a repr would print them all
class BatchResult:
    ids: list[str]
    forecasts: np.ndarray  # tenants x meters x (median, lower, upper) x horizon
    models: list[list[SeriesModel]]
    scores: list[tuple[float, float, float]]  # per series scored: MASE, naive MASE, band coverage
    projections: dict[str, tuple[str, Decimal, Decimal, Decimal]]  # currency, median, lower, upper


@dataclass(repr=False)
class UsageRun:
    version: str
    origin: date
    ids: list[str]
    forecasts: np.ndarray
    backtest: Backtest
    projections: dict[str, tuple[str, Decimal, Decimal, Decimal]]
    seconds: float
    models: dict[str, list[SeriesModel]] = field(default_factory=dict)

    def forecast_of(self, tenant_id: str) -> np.ndarray:
        forecast: np.ndarray = self.forecasts[self.ids.index(tenant_id)]
        return forecast


def forecast_batch(database_url: str, ids: list[str], job: UsageJob) -> BatchResult:
    """One batch, in this process: the body of a Ray task, and the sequential path. It gets the
    database's URL alone, not the settings with their secrets: Ray keeps a task's arguments."""
    return asyncio.run(_forecast_batch(database_url, ids, job))


forecast_batch_task = ray.remote(max_retries=3)(forecast_batch)


async def _forecast_batch(database_url: str, ids: list[str], job: UsageJob) -> BatchResult:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            usage = await data.daily_usage(conn, ids, job.first, job.history_days)
            pricing = await _pricing(conn, ids)
            catalog, _ = await load_catalog(conn)
        result = fit_batch(ids, usage, job)
        result.projections = _projections(result, usage, pricing, catalog, job)
        if job.store:
            async with engine.begin() as conn:
                await _store(conn, result, job)
        return result
    finally:
        await engine.dispose()


def fit_batch(ids: list[str], usage: np.ndarray, job: UsageJob) -> BatchResult:
    """Pure: a model per tenant and meter, its forecast, and its backtest scores."""
    weekdays = job.weekdays()
    forecasts = np.zeros((len(ids), len(METERS), 3, job.horizon))
    models: list[list[SeriesModel]] = []
    scores: list[tuple[float, float, float]] = []
    for t in range(len(ids)):
        fitted = fit_tenant(usage[t], weekdays)
        for m, model in enumerate(fitted):
            forecast = model.forecast(weekdays, job.horizon)
            forecasts[t, m] = (forecast.median, forecast.lower, forecast.upper)
        if job.backtest:
            scores.extend(score for score in backtest_tenant(usage[t], weekdays, job.horizon) if score)
        models.append(fitted)
    return BatchResult(ids, forecasts, models, scores, {})


async def _pricing(conn: AsyncConnection, ids: list[str]) -> dict[str, TenantPricing | None]:
    """Each tenant's pricing settings: its row, else its tier's catalog terms; None when it cannot
    be priced (airgapped without a licence)."""
    stored = await conn.execute(
        select(tenant_pricing.c.tenant_id, cast(tenant_pricing.c.settings, Text)).where(
            tenant_pricing.c.tenant_id.in_(ids)
        )
    )
    result: dict[str, TenantPricing | None] = {
        tenant_id: TenantPricing.from_json(decimal_json(text)) for tenant_id, text in stored
    }
    for tenant_id, tier in await conn.execute(
        select(tenants.c.tenant_id, tenants.c.tier).where(tenants.c.tenant_id.in_(ids))
    ):
        if tenant_id not in result:
            try:
                result[tenant_id] = catalog_terms(tenant_id, tier)
            except InvalidSettings:
                result[tenant_id] = None
    return result


def _projections(
    result: BatchResult,
    usage: np.ndarray,
    pricing: dict[str, TenantPricing | None],
    catalog: Catalog,
    job: UsageJob,
) -> dict[str, tuple[str, Decimal, Decimal, Decimal]]:
    start = projection.month_start_index(job.origin, job.first)
    projections = {}
    for t, tenant_id in enumerate(result.ids):
        terms = pricing.get(tenant_id)
        if terms is None:
            continue
        so_far = usage[t, max(start, 0) :].sum(axis=0)
        bounds = [result.forecasts[t, :, b, :].T for b in range(3)]  # each days x meters
        median, lower, upper = projection.project(terms, catalog, job.origin, so_far, bounds)
        projections[tenant_id] = (
            median.currency.code,
            median.major_units(),
            lower.major_units(),
            upper.major_units(),
        )
    return projections


async def _store(conn: AsyncConnection, result: BatchResult, job: UsageJob) -> None:
    """Replace the batch's rows (a retried task writes them again)."""
    for table in (usage_forecasts, invoice_projections):
        await conn.execute(
            delete(table).where(table.c.model_version == job.version, table.c.tenant_id.in_(result.ids))
        )
    days = [job.origin + timedelta(days=h) for h in range(job.horizon)]
    records = [
        (
            job.version,
            tenant_id,
            meter.value,
            days[h],
            *(_numeric(result.forecasts[t, m, b, h]) for b in range(3)),
        )
        for t, tenant_id in enumerate(result.ids)
        for m, meter in enumerate(METERS)
        for h in range(job.horizon)
    ]
    raw = await conn.get_raw_connection()
    assert raw.driver_connection is not None  # asyncpg's, under SQLAlchemy's adapter
    columns = ["model_version", "tenant_id", "meter", "day", *BOUNDS]
    await raw.driver_connection.copy_records_to_table("usage_forecasts", records=records, columns=columns)
    period_start = projection.month_of(job.origin).start
    rows = [
        (job.version, tenant_id, period_start, currency, median, lower, upper)
        for tenant_id, (currency, median, lower, upper) in result.projections.items()
    ]
    columns = ["model_version", "tenant_id", "period_start", "currency", "subtotal", "lower", "upper"]
    await raw.driver_connection.copy_records_to_table("invoice_projections", records=rows, columns=columns)


def _numeric(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def run_usage_forecast(
    settings: Settings,
    *,
    prefix: str | None = None,
    ids: list[str] | None = None,
    origin: date | None = None,
    batch_size: int = 100,
    parallel: bool = True,
    store: bool = True,
    backtest: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> UsageRun:
    """Forecast every tenant (or those with `prefix`, or `ids`) for the 30 days from `origin`
    (default: today, UTC). `parallel` runs the batches as Ray tasks (the caller is connected to
    Ray); otherwise one after another in this process. Stores forecasts, projections and the
    model under a new version unless `store` is False."""
    return asyncio.run(
        _run(
            settings,
            prefix,
            ids,
            origin or datetime.now(UTC).date(),
            batch_size,
            parallel,
            store,
            backtest,
            progress,
        )
    )


async def _run(
    settings: Settings,
    prefix: str | None,
    ids: list[str] | None,
    origin: date,
    batch_size: int,
    parallel: bool,
    store: bool,
    backtest: bool,
    progress: Callable[[int, int], None] | None,
) -> UsageRun:
    started = time.perf_counter()
    version = model_store.new_version("usage")
    job = UsageJob(version, origin, backtest=backtest, store=store)
    engine = data.engine(settings)
    try:
        async with engine.begin() as conn:
            ids = ids if ids is not None else await data.tenant_ids(conn, prefix)
            if store:  # the row first: the tasks' forecasts refer to it
                path = model_store.model_dir(settings, version)
                await model_store.record(
                    conn, version, "usage", MODEL_NAME, origin - timedelta(days=1), _params(job), {}, path
                )
        batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
        results = await _gather(settings, batches, job, parallel, progress)
        run = _combine(version, origin, ids, results, time.perf_counter() - started)
        if store:
            model_store.save(
                settings, version, run.models, {"version": version, "origin": origin, **_params(job)}
            )
            async with engine.begin() as conn:
                await conn.execute(
                    update(forecast_models)
                    .where(forecast_models.c.version == version)
                    .values(metrics=model_store._json(run.backtest.to_json()))
                )
        return run
    finally:
        await engine.dispose()


async def _gather(
    settings: Settings,
    batches: list[list[str]],
    job: UsageJob,
    parallel: bool,
    progress: Callable[[int, int], None] | None,
) -> list[BatchResult]:
    results: list[BatchResult] = []
    total, done = sum(len(batch) for batch in batches), 0
    database_url = settings.resolved_database_url()
    if parallel:
        pending = {
            asyncio.wrap_future(forecast_batch_task.remote(database_url, b, job).future()) for b in batches
        }
        finished: list[BatchResult] = []
        while pending:
            ready, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in ready:
                finished.append(future.result())
                done += len(finished[-1].ids)
            if progress:
                progress(done, total)
        order = {tuple(batch): i for i, batch in enumerate(batches)}
        return sorted(finished, key=lambda result: order[tuple(result.ids)])
    for batch in batches:
        results.append(await asyncio.to_thread(forecast_batch, database_url, batch, job))
        done += len(batch)
        if progress:
            progress(done, total)
    return results


def _combine(
    version: str, origin: date, ids: list[str], results: list[BatchResult], seconds: float
) -> UsageRun:
    forecasts = (
        np.concatenate([r.forecasts for r in results]) if results else np.zeros((0, len(METERS), 3, HORIZON))
    )
    return UsageRun(
        version=version,
        origin=origin,
        ids=ids,
        forecasts=forecasts,
        backtest=summarise([score for r in results for score in r.scores]),
        projections={k: v for r in results for k, v in r.projections.items()},
        seconds=seconds,
        models={
            tenant_id: models for r in results for tenant_id, models in zip(r.ids, r.models, strict=True)
        },
    )


def _params(job: UsageJob) -> dict[str, object]:
    return {"alpha": ALPHA, "horizon": job.horizon, "history_days": job.history_days, "interval": COVERAGE}


def load_forecaster(settings: Settings, version: str) -> tuple[dict[str, list[SeriesModel]], dict[str, Any]]:
    """A saved usage model: tenant -> its fitted series (METERS order), and its metadata. Each
    `SeriesModel.forecast(weekdays)` gives the stored forecast again."""
    models, meta = model_store.load(settings, version)
    forecaster: dict[str, list[SeriesModel]] = models
    return forecaster, meta
