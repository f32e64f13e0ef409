"""The reports finance and the data scientists read: revenue analytics (forecasting/revenue.py),
a churn model's scores, and a tenant's usage forecast with its month-end projection. Each read
is one snapshot of its own and returns records; the HTTP edge renders them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from forecasting import model_store
from forecasting.revenue import RevenueReport, revenue_report
from forecasting.tables import churn_scores, invoice_projections, usage_forecasts


class NoModel(LookupError):
    """No model of that kind has been trained yet."""


@dataclass(frozen=True, slots=True)
class ChurnScore:
    tenant_id: str
    as_of: date
    probability: Decimal
    drivers: Any  # [{"feature", "contribution"}], strongest first, as the model stored them


@dataclass(frozen=True, slots=True)
class ChurnScores:
    model_version: str
    scores: tuple[ChurnScore, ...]  # highest probability first


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    day: date
    meter: str
    quantity: Decimal  # the median
    lower: Decimal  # the 90% interval
    upper: Decimal


@dataclass(frozen=True, slots=True)
class Projection:
    """The month's invoice subtotal the usage forecast leads to."""

    period_start: datetime
    currency: str
    subtotal: Decimal
    lower: Decimal
    upper: Decimal


@dataclass(frozen=True, slots=True)
class TenantForecast:
    tenant_id: str
    model_version: str | None  # None when no usage model exists (then there are no points)
    points: tuple[ForecastPoint, ...]  # by day, then meter
    projection: Projection | None


async def revenue(
    engine: AsyncEngine,
    fx_source: str,
    currency: str,
    start: date | None,
    end: date | None,
    prefix: str | None,
    top: int,
) -> RevenueReport:
    """Revenue analytics (forecasting/revenue.py). Raises MissingRate without a rate to convert."""
    async with engine.connect() as conn:
        return await revenue_report(conn, fx_source, currency, start, end, prefix, top)


async def churn(engine: AsyncEngine, model_version: str | None, limit: int) -> ChurnScores:
    """A churn model's scores (default: the latest model's). Raises NoModel when none exists."""
    async with engine.connect() as conn:
        version = model_version or await model_store.latest(conn, "churn")
        if version is None:
            raise NoModel("churn")
        rows = await conn.execute(
            select(churn_scores)
            .where(churn_scores.c.model_version == version)
            .order_by(churn_scores.c.probability.desc(), churn_scores.c.tenant_id)
            .limit(limit)
        )
        scores = tuple(ChurnScore(row.tenant_id, row.as_of, row.probability, row.drivers) for row in rows)
    return ChurnScores(version, scores)


async def tenant_forecast(engine: AsyncEngine, tenant_id: str, model_version: str | None) -> TenantForecast:
    """A tenant's usage forecast and month-end projection from a usage model (default: the latest)."""
    async with engine.connect() as conn:
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
    return TenantForecast(
        tenant_id,
        version,
        tuple(ForecastPoint(row.day, row.meter, row.quantity, row.lower, row.upper) for row in rows),
        None
        if projected is None
        else Projection(
            projected.period_start, projected.currency, projected.subtotal, projected.lower, projected.upper
        ),
    )
