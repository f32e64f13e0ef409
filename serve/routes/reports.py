"""Reports for finance and the data scientists: revenue analytics, churn scores, usage forecasts.
Amounts are decimal strings in major units; see forecasting/revenue.py for the definitions."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from forecasting import reports
from forecasting.fx_rates import MissingRate, source_of
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
        report = await reports.revenue(
            svc.engine, fx_source or source_of(svc.settings), currency, first, after_last, prefix, top
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
    try:
        found = await reports.churn(services(request).engine, model_version, limit)
    except reports.NoModel:
        raise Problem(404, "not-found", "No churn model", "train one with `billing forecast churn`") from None
    scores = [
        {
            "tenant_id": score.tenant_id,
            "as_of": score.as_of.isoformat(),
            "probability": str(score.probability),
            "drivers": score.drivers,
        }
        for score in found.scores
    ]
    if model_version and not scores:
        raise invalid_field("model_version", f"{model_version} has no churn scores")
    return json_response({"model_version": found.model_version, "scores": scores})


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
    forecast = await reports.tenant_forecast(services(request).engine, tenant_id, model_version)
    if not forecast.points:
        detail = f"tenant_id: no forecast for {tenant_id!r} in {forecast.model_version}"
        raise Problem(404, "not-found", "No forecast", detail)
    days: dict[str, dict[str, dict[str, str]]] = {}
    for point in forecast.points:
        days.setdefault(point.day.isoformat(), {})[point.meter] = {
            "quantity": str(point.quantity),
            "lower": str(point.lower),
            "upper": str(point.upper),
        }
    projected = forecast.projection
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
            "model_version": forecast.model_version,
            "interval": 0.9,
            "days": [{"day": day, **meters} for day, meters in days.items()],
            "projected_invoice": projection,
        }
    )
