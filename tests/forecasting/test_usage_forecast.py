"""Usage forecasting on the database, on Ray tasks and in one process."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select

from forecasting.tables import forecast_models, invoice_projections, usage_forecasts
from forecasting.usage_run import UsageJob, load_forecaster, run_usage_forecast
from forecasting.workflows import usage_workflow
from infra.database import create_engine
from infra.schema import invoices, tenants
from tests.forecasting.conftest import PREFIX, SPEC


def _fetch(settings, *queries):
    async def go():
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return [(await conn.execute(query)).all() for query in queries]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_ray_tasks_forecast_exactly_as_one_process_and_beat_seasonal_naive(private_settings, history):
    on_ray = run_usage_forecast(
        private_settings, prefix=PREFIX, origin=SPEC.end, batch_size=37, parallel=True
    )
    alone = run_usage_forecast(
        private_settings, prefix=PREFIX, origin=SPEC.end, batch_size=400, parallel=False
    )
    assert on_ray.ids == alone.ids and len(on_ray.ids) == SPEC.tenants
    assert np.array_equal(on_ray.forecasts, alone.forecasts)
    assert on_ray.projections == alone.projections
    backtest = on_ray.backtest
    print(
        f"\nMASE {backtest.mase:.3f}, seasonal-naive MASE {backtest.naive_mase:.3f}, {backtest.series} series"
    )
    assert backtest.series > 1000
    assert backtest.mase < 1.0 and backtest.relative < 1.0

    stored, model = _fetch(
        private_settings,
        select(
            usage_forecasts.c.tenant_id,
            usage_forecasts.c.meter,
            usage_forecasts.c.day,
            usage_forecasts.c.quantity,
        )
        .where(usage_forecasts.c.model_version == on_ray.version)
        .order_by(usage_forecasts.c.tenant_id, usage_forecasts.c.meter, usage_forecasts.c.day),
        select(forecast_models).where(forecast_models.c.version == on_ray.version),
    )
    assert len(stored) == SPEC.tenants * 5 * 30
    tenant = on_ray.ids[0]
    cpu = [row.quantity for row in stored if row.tenant_id == tenant and row.meter == "cpu_seconds"]
    assert cpu == [Decimal(f"{value:.6f}") for value in on_ray.forecast_of(tenant)[0, 0]]
    assert model[0].kind == "usage" and model[0].metrics["mase"] == backtest.mase


def test_a_saved_model_loads_by_version_and_forecasts_the_same(private_settings, history):
    run = run_usage_forecast(private_settings, prefix=PREFIX, origin=SPEC.end, parallel=False, backtest=False)
    models, meta = load_forecaster(private_settings, run.version)
    assert meta["version"] == run.version
    weekdays = UsageJob(run.version, run.origin).weekdays()
    for tenant in run.ids[:20]:
        for m, series in enumerate(models[tenant]):
            assert np.array_equal(series.forecast(weekdays).median, run.forecast_of(tenant)[m, 0])


def test_the_projected_invoice_brackets_what_was_invoiced(private_settings, history):
    """Forecast October from its first day, then compare with October's invoices (USD tenants,
    who are invoiced in the catalog's currency, and who stayed the month)."""
    run = run_usage_forecast(
        private_settings, prefix=PREFIX, origin=date(2026, 10, 1), parallel=True, backtest=False
    )
    (invoiced,) = _fetch(
        private_settings,
        select(invoices.c.tenant_id, invoices.c.subtotal)
        .join(tenants, tenants.c.tenant_id == invoices.c.tenant_id)
        .where(
            invoices.c.tenant_id.like(PREFIX + "%"),
            tenants.c.currency == "usd",
            func.extract("month", invoices.c.period_start) == 10,
        ),
    )
    stayed = {t for t, _ in invoiced if run.forecast_of(t)[:, 0, -1].any()}
    actual = {t: subtotal for t, subtotal in invoiced if t in stayed}
    assert len(actual) > 30
    projected = sum(run.projections[t][1] for t in actual)
    assert abs(projected - sum(actual.values())) < Decimal("0.1") * sum(actual.values())
    inside = sum(run.projections[t][2] <= actual[t] <= run.projections[t][3] for t in actual)
    assert inside >= 0.7 * len(actual)
    (rows,) = _fetch(
        private_settings,
        select(invoice_projections).where(invoice_projections.c.model_version == run.version),
    )
    assert all(row.lower <= row.subtotal <= row.upper and row.currency == "usd" for row in rows)


def test_the_workflow_plots_a_typical_active_tenant(private_settings, history, simulated, tmp_path):
    outcome = usage_workflow(private_settings, tmp_path, prefix=PREFIX, origin=SPEC.end, parallel=False)
    t = simulated.tenant_ids.index(outcome.tenant)
    assert simulated.churned[t] > SPEC.days and simulated.onset[t] > SPEC.days
    assert (
        outcome.plot.name == f"usage-forecast-{outcome.tenant}.png" and outcome.plot.stat().st_size > 10_000
    )
    named = usage_workflow(
        private_settings, tmp_path, prefix=PREFIX, origin=SPEC.end, tenant=PREFIX + "00003"
    )
    assert named.tenant == PREFIX + "00003" and named.plot.exists()
