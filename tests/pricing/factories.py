"""Small builders shared by the pricing tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pricing.catalog import load_default_catalog
from pricing.money import Currency
from pricing.periods import Period
from pricing.rating import Rating, rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

USD = Currency("usd")
MARCH_2025 = Period.calendar_month(2025, 3)


def at(day: int, hour: int = 0, month: int = 3, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def usage(day: int = 5, hour: int = 10, **quantities: str | int) -> HourlyUsage:
    """One hour of usage in March 2025: `usage(cpu_seconds=7200)`."""
    return HourlyUsage(at(day, hour), **{m: Decimal(q) for m, q in quantities.items()})


def rate(tenant: TenantPricing, *rows: HourlyUsage, period: Period = MARCH_2025) -> Rating:
    return rate_period(rows, tenant, load_default_catalog(), period)


def totals(rating: Rating) -> list[tuple[str, str]]:
    """(kind, rounded amount in major units) per line, in the rating's order."""
    return [(line.kind.value, line.rounded.format_major()) for line in rating.lines]
