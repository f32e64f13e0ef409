"""The reports API: revenue for finance, churn scores, a tenant's forecast; who may read them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from forecasting import model_store
from forecasting.generator import HistorySpec
from forecasting.generator_store import fx_source, generate
from forecasting.tables import churn_scores
from forecasting.usage_run import run_usage_forecast
from infra.database import create_engine
from infra.schema import invoices
from tests.conftest import auth

# A few US tenants in the session database (the big history lives in a private one).
SPEC = HistorySpec(
    prefix=f"fcapi{uuid.uuid4().hex[:6]}-",
    tenants=8,
    seed=5,
    hours_per_day=1,
    locales=(("US", "usd", "us-east"),),
)


@pytest.fixture(scope="module")
def small_history(stack):
    return generate(stack.settings, SPEC)


def _october_subtotals(settings) -> Decimal:
    async def go():
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                query = select(invoices.c.subtotal).where(
                    invoices.c.tenant_id.like(SPEC.prefix + "%"), invoices.c.period_start == date(2026, 10, 1)
                )
                return sum((await conn.execute(query)).scalars(), Decimal(0))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_finance_reads_revenue_and_tenants_may_not(api, tokens, stack, small_history):
    query = {"prefix": SPEC.prefix, "fx_source": fx_source(SPEC), "currency": "usd"}
    response = api.get("/api/v1/reports/revenue", params=query, headers=auth(tokens["finance"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mrr"] == str(_october_subtotals(stack.settings).quantize(Decimal("0.01")))
    assert body["arr"] == str((Decimal(body["mrr"]) * 12).quantize(Decimal("0.01")))
    assert set(body["by_currency"]) == {"usd"} and len(body["by_month"]) == 9
    assert api.get("/api/v1/reports/revenue", params=query, headers=auth(tokens["viewer"])).status_code == 200
    for role in ("tenant", "kernel"):
        assert api.get("/api/v1/reports/revenue", params=query, headers=auth(tokens[role])).status_code == 403
    assert api.get("/api/v1/reports/revenue", params=query).status_code == 401
    missing = api.get(
        "/api/v1/reports/revenue", params=query | {"currency": "chf"}, headers=auth(tokens["finance"])
    )
    assert missing.status_code == 409 and missing.headers["content-type"] == "application/problem+json"
    bad = api.get("/api/v1/reports/revenue", params={"from": "2026-13"}, headers=auth(tokens["finance"]))
    assert bad.status_code == 422


def test_a_tenants_forecast_and_its_projected_invoice(api, tokens, stack, small_history):
    run = run_usage_forecast(
        stack.settings, prefix=SPEC.prefix, origin=SPEC.end, parallel=True, backtest=False
    )
    tenant = next(t for t in run.ids if run.forecast_of(t)[:, 0].any())
    path = f"/api/v1/tenants/{tenant}/forecast"
    response = api.get(path, params={"model_version": run.version}, headers=auth(tokens["viewer"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["days"]) == 30 and body["days"][0]["day"] == SPEC.end.isoformat()
    first = body["days"][0]["cpu_seconds"]
    assert Decimal(first["lower"]) <= Decimal(first["quantity"]) <= Decimal(first["upper"])
    assert body["projected_invoice"]["currency"] == "usd"
    assert api.get(path, headers=auth(tokens["tenant"])).status_code == 403  # tenant-a reads only itself
    unknown = api.get(
        "/api/v1/tenants/nobody/forecast",
        params={"model_version": run.version},
        headers=auth(tokens["finance"]),
    )
    assert unknown.status_code == 404


def test_churn_scores_highest_risk_first(api, tokens, stack, small_history, tmp_path):
    version = model_store.new_version("churn")

    async def record():
        engine = create_engine(stack.settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await model_store.record(
                    conn, version, "churn", "logistic-platt", SPEC.end, {}, {"auc": 0.9}, tmp_path
                )
                await conn.execute(
                    insert(churn_scores),
                    [
                        {
                            "model_version": version,
                            "tenant_id": f"{SPEC.prefix}00000",
                            "as_of": SPEC.end,
                            "probability": Decimal("0.05"),
                            "drivers": [],
                        },
                        {
                            "model_version": version,
                            "tenant_id": f"{SPEC.prefix}00001",
                            "as_of": SPEC.end,
                            "probability": Decimal("0.61"),
                            "drivers": [{"feature": "drop_8w low", "contribution": 1.2}],
                        },
                    ],
                )
        finally:
            await engine.dispose()

    asyncio.run(record())
    response = api.get(
        "/api/v1/reports/churn", params={"model_version": version}, headers=auth(tokens["finance"])
    )
    assert response.status_code == 200, response.text
    scores = response.json()["scores"]
    assert [s["probability"] for s in scores] == ["0.61", "0.05"]
    assert scores[0]["drivers"][0]["feature"] == "drop_8w low"
    assert api.get("/api/v1/reports/churn", headers=auth(tokens["tenant"])).status_code == 403
