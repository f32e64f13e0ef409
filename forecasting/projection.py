"""The month-end invoice a usage forecast implies: usage so far this month plus the forecast for
the rest of it, rated by the pricing engine (`rate_period`), in the catalog's currency."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import numpy as np

from pricing.catalog import Catalog
from pricing.meters import METERS
from pricing.money import Money
from pricing.periods import Period
from pricing.rating import rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

QUANTUM = Decimal("0.000001")


def month_of(day: date) -> Period:
    return Period.calendar_month(day.year, day.month)


def rest_of_month(origin: date, forecast: np.ndarray) -> np.ndarray:
    """The forecast (days x meters) summed over the days from `origin` to the month's end. A day
    the forecast does not reach (a 31st after a 30-day horizon) repeats the same weekday a week
    before."""
    period = month_of(origin)
    days = (period.end.date() - origin).days
    per_day = [
        forecast[i] if i < len(forecast) else forecast[i - 7 * ((i - len(forecast)) // 7 + 1)]
        for i in range(days)
    ]
    return np.sum(per_day, axis=0) if per_day else np.zeros(len(METERS))


def project(
    pricing: TenantPricing,
    catalog: Catalog,
    origin: date,
    month_to_date: np.ndarray,
    forecasts: Sequence[np.ndarray],
) -> list[Money]:
    """Rated month totals for each forecast (days x meters) added to the usage so far (meters)."""
    period = month_of(origin)
    result = []
    for forecast in forecasts:
        totals = month_to_date + rest_of_month(origin, forecast)
        # The month's totals as one row: the pricing is per unit or tiered on the month's total,
        # so one row rates as the hours would (spot prices, which need the hours, are not forecast).
        usage = HourlyUsage(period.start, **{m.value: _decimal(totals[i]) for i, m in enumerate(METERS)})
        result.append(rate_period([usage], pricing, catalog, period).subtotal)
    return result


def month_start_index(origin: date, first: date) -> int:
    """Index (from `first`) of the first day of the origin's month."""
    return (origin.replace(day=1) - first).days


def _decimal(value: float) -> Decimal:
    return Decimal(f"{max(value, 0.0):.6f}").quantize(QUANTUM)
