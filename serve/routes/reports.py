"""Reports for finance and the data scientists: revenue analytics, churn scores, usage forecasts.
Amounts are decimal strings in major units; see forecasting/revenue.py for the definitions."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.responses import Response

from forecasting import model_store
from forecasting.fx_rates import MissingRate, source_of
from forecasting.revenue import revenue_report
from forecasting.tables import churn_scores, invoice_projections, usage_forecasts
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import check_reads_tenant, invalid_field, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["reports"])
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def _month(text: str | None, field: str) -> date | None:
    if text is None:
        return None
    year, month = (int(part) for part in text.split("-"))
    try:
        return date(year, month, 1)
    except ValueError:  # the pattern lets year 0000 through (found by tests/test_fuzz_api.py)
        raise invalid_field(field, f"{text} is not a month of the calendar") from None


@router.get("/reports/revenue", summary="MRR, ARR, ARPU, NRR and revenue by month, tier, region, currency")
async def revenue(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    currency: Annotated[str, Query(pattern=r"^[A-Za-z]{3}$", description="reporting currency")] = "usd",
    start: Annotated[str | None, Query(alias="from", pattern=MONTH, description="first month")] = None,
    end: Annotated[str | None, Query(alias="to", pattern=MONTH, description="month after the last")] = None,
    prefix: Annotated[str | None, Query(max_length=64, description="tenant ids starting with")] = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
    fx_source: Annotated[str | None, Query(max_length=64, description="rate table")] = None,
) -> Response:
    svc = services(request)
    first, after_last = _month(start, "from"), _month(end, "to")
    try:
        async with svc.engine.connect() as conn:
            report = await revenue_report(
                conn, fx_source or source_of(svc.settings), currency, first, after_last, prefix, top
            )
    except MissingRate as error:
        raise Problem(409, "conflict", "No exchange rate", f"fx: {error}") from None
    return json_response(report.to_json())


@router.get("/reports/churn", summary="Churn risk of each tenant from a churn model, highest first")
async def churn(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    model_version: Annotated[str | None, Query(max_length=64, description="default: the latest")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    async with services(request).engine.connect() as conn:
        version = model_version or await model_store.latest(conn, "churn")
        if version is None:
            raise Problem(404, "not-found", "No churn model", "train one with `billing forecast churn`")
        rows = await conn.execute(
            select(churn_scores)
            .where(churn_scores.c.model_version == version)
            .order_by(churn_scores.c.probability.desc(), churn_scores.c.tenant_id)
            .limit(limit)
        )
        scores = [
            {
                "tenant_id": row.tenant_id,
                "as_of": row.as_of.isoformat(),
                "probability": str(row.probability),
                "drivers": row.drivers,
            }
            for row in rows
        ]
    if model_version and not scores:
        raise invalid_field("model_version", f"{model_version} has no churn scores")
    return json_response({"model_version": version, "scores": scores})


@router.get(
    "/tenants/{tenant_id}/forecast", summary="A tenant's 30-day usage forecast and month-end projection"
)
async def tenant_forecast(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
    model_version: Annotated[str | None, Query(max_length=64, description="default: the latest")] = None,
) -> Response:
    check_reads_tenant(principal, tenant_id)
    async with services(request).engine.connect() as conn:
        version = model_version or await model_store.latest(conn, "usage")
        rows = (
            await conn.execute(
                select(usage_forecasts)
                .where(usage_forecasts.c.model_version == version, usage_forecasts.c.tenant_id == tenant_id)
                .order_by(usage_forecasts.c.day, usage_forecasts.c.meter)
            )
        ).all()
        projected = (
            await conn.execute(
                select(invoice_projections).where(
                    invoice_projections.c.model_version == version,
                    invoice_projections.c.tenant_id == tenant_id,
                )
            )
        ).first()
    if not rows:
        raise Problem(
            404, "not-found", "No forecast", f"tenant_id: no forecast for {tenant_id!r} in {version}"
        )
    days: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        days.setdefault(row.day.isoformat(), {})[row.meter] = {
            "quantity": str(row.quantity),
            "lower": str(row.lower),
            "upper": str(row.upper),
        }
    projection = None
    if projected is not None:
        projection = {
            "period_start": projected.period_start.isoformat(),
            "currency": projected.currency,
            "subtotal": str(projected.subtotal),
            "lower": str(projected.lower),
            "upper": str(projected.upper),
        }
    return json_response(
        {
            "tenant_id": tenant_id,
            "model_version": version,
            "interval": 0.9,
            "days": [{"day": day, **meters} for day, meters in days.items()],
            "projected_invoice": projection,
        }
    )
