"""Rating: hourly usage, a tenant's terms and the catalog in; the lines of an invoice out.

`rate_period` is a pure function of its arguments, deterministic in any process (all
arithmetic runs in `money.ARITHMETIC`). The lines, in order: usage per meter (see
`usage_lines`), the base fee, contract discounts, the licence and support (airgapped), and
last the minimum-commitment true-up, which tops the rounded lines up to the minimum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from operator import add

from pricing.airgapped import licence_lines
from pricing.catalog import Catalog
from pricing.errors import InvalidUsage
from pricing.lines import LineKind, RatedLine
from pricing.meters import METERS, Meter
from pricing.money import Currency, Money, exact, plain
from pricing.periods import Period
from pricing.spot import SpotSeries
from pricing.tenant_pricing import TenantPricing
from pricing.terms import Terms
from pricing.usage import HourlyUsage
from pricing.usage_lines import usage_lines

_ZEROS = (Decimal(0),) * len(METERS)


@dataclass(frozen=True)
class Rating:
    tenant_id: str
    period: Period
    currency: Currency
    lines: tuple[RatedLine, ...]

    @property
    def subtotal(self) -> Money:
        """The sum of the rounded lines: before credits and tax."""
        return Money.total((line.rounded for line in self.lines), self.currency)

    def to_json(self) -> dict[str, object]:
        return {
            "tenant_id": self.tenant_id,
            "period": self.period.to_json(),
            "currency": self.currency.code,
            "lines": [line.to_json() for line in self.lines],
            "subtotal": self.subtotal.format_major(),
        }


@exact
def rate_period(
    usage: Iterable[HourlyUsage],
    tenant: TenantPricing,
    catalog: Catalog,
    period: Period,
    *,
    spot: Mapping[Meter, SpotSeries] | None = None,
) -> Rating:
    """Rate a tenant's usage over `period`; `spot` gives hourly prices for some meters."""
    terms = Terms(tenant, catalog, period, spot or {})
    hours = hourly_totals(usage, period)
    lines: list[RatedLine] = []
    for index, meter in enumerate(METERS):
        lines += usage_lines(meter, [(hour, quantities[index]) for hour, quantities in hours], terms)
    lines += base_fee_lines(terms)
    lines += discount_lines(lines, terms)
    if tenant.licence is not None:
        lines += licence_lines(tenant.licence, period, terms.plan_at, terms.currency)
    lines += true_up_lines(lines, terms)
    return Rating(tenant.tenant_id, period, terms.currency, tuple(lines))


def hourly_totals(usage: Iterable[HourlyUsage], period: Period) -> list[tuple[datetime, tuple[Decimal, ...]]]:
    """Usage per hour in `METERS` order, hours ascending; rows for the same hour add up. (A month
    is hundreds of rows per tenant: the sums are made by `map` over the five meters at once.)"""
    totals: dict[datetime, tuple[Decimal, ...]] = {}
    start, end = period.start, period.end
    for index, row in enumerate(usage):
        hour = row.hour
        if not start <= hour < end:
            raise InvalidUsage(f"usage[{index}].hour", "is outside the period being rated")
        totals[hour] = tuple(map(add, totals.get(hour, _ZEROS), row.quantities()))
    return sorted(totals.items())  # hours are unique: only they are compared


def base_fee_lines(terms: Terms) -> list[RatedLine]:
    """The monthly base fee, prorated by month, one line per catalog version in force."""
    lines = []
    for version, grouped in groupby(terms.parts, key=lambda part: part.version):
        parts = list(grouped)
        fee = terms.plan(version).base_fee_monthly
        if not fee:
            continue
        months = sum((part.months for part in parts), Decimal(0))
        lines.append(
            RatedLine(
                kind=LineKind.BASE_FEE,
                description=f"{terms.tenant.tier.capitalize()} base fee, catalog {version.version}",
                details=(("tier", str(terms.tenant.tier)), ("version", version.version)),
                period=Period(parts[0].period.start, parts[-1].period.end),
                quantity=months,
                unit="month",
                unit_price=fee,
                amount=Money(fee * months, terms.currency),
            )
        )
    return lines


def discount_lines(lines: list[RatedLine], terms: Terms) -> list[RatedLine]:
    """Each contract's percentage off the usage it was in force for."""
    result = []
    for contract in terms.tenant.contracts:
        usage = [line for line in lines if line.contract_id == contract.contract_id]
        discount = -sum((line.amount.minor_units for line in usage), Decimal(0))
        discount = discount * contract.discount_percent / 100
        if not discount:
            continue
        result.append(
            RatedLine(
                kind=LineKind.DISCOUNT,
                description=f"Contract {contract.contract_id}, {contract.discount_percent}% off usage",
                period=Period(
                    min(line.period.start for line in usage),
                    max(line.period.end for line in usage),
                ),
                quantity=Decimal(1),
                unit="discount",
                unit_price=discount,
                amount=Money(discount, terms.currency),
                contract_id=contract.contract_id,
                details=(("contract", contract.contract_id), ("percent", plain(contract.discount_percent))),
            )
        )
    return result


def true_up_lines(lines: list[RatedLine], terms: Terms) -> list[RatedLine]:
    """Tops the invoice up to the period's minimum commitment when the rounded lines fall short."""
    minimum = terms.minimum()
    charged = sum((line.rounded.minor_units for line in lines), Decimal(0))
    if not minimum or charged >= minimum:
        return []
    shortfall = Money(minimum - charged, terms.currency)
    return [
        RatedLine(
            kind=LineKind.MINIMUM_TRUE_UP,
            description=f"Minimum commitment true-up to {Money(minimum, terms.currency)}",
            period=terms.period,
            quantity=Decimal(1),
            unit="true-up",
            unit_price=shortfall.minor_units,
            amount=shortfall,
            details=(("minimum", plain(minimum)), ("charged", plain(charged)), ("currency", terms.currency.code)),
        )
    ]
