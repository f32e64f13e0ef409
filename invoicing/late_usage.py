"""Late usage: usage that reaches a period after its invoice was finalized.

A finalized invoice never changes, so the difference is charged (or, if rating now comes out
lower, credited) on the tenant's next invoice as one clearly labelled line per late period:
the period re-rated with all its usage, less what was charged for it so far. Comparing totals,
not the late events alone, keeps graduated and volume prices right: the late usage is priced
at the tier the whole period reached. Pure: the service decides which periods to look at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from invoicing.composition import InvoiceLine
from pricing.errors import CurrencyMismatch
from pricing.lines import LineKind
from pricing.meters import METERS
from pricing.money import Money, plain
from pricing.periods import Period
from pricing.usage import HourlyUsage

UsageTotals = Mapping[str, Decimal]  # meter name -> quantity over a period


@dataclass(frozen=True, slots=True)
class BilledPeriod:
    """What has been charged for a finalized invoice's period: by the invoice, then by any
    late-usage lines since. `charged` is before credits, in the invoice's currency."""

    invoice_id: str
    number: str
    period: Period
    usage: UsageTotals
    charged: Money


def usage_totals(hours: Sequence[HourlyUsage]) -> dict[str, Decimal]:
    columns = list(zip(*(hour.quantities() for hour in hours), strict=True)) or [()] * len(METERS)
    return {meter.value: sum(column, Decimal(0)) for meter, column in zip(METERS, columns, strict=True)}


def totals_to_json(totals: UsageTotals) -> dict[str, str]:
    return {meter: plain(quantity) for meter, quantity in totals.items()}


def totals_from_json(document: Mapping[str, str]) -> dict[str, Decimal]:
    return {meter.value: Decimal(document.get(meter.value, "0")) for meter in METERS}


def late_usage_line(
    billed: BilledPeriod, usage_now: UsageTotals, lines_now: Sequence[InvoiceLine]
) -> InvoiceLine:
    """The line for `billed`'s period re-rated as `lines_now` (from `usage_now`), in its currency."""
    currency = billed.charged.currency
    if any(line.amount.currency != currency for line in lines_now):
        raise CurrencyMismatch(f"the re-rated period is not in the invoice's {currency}")
    amount = Money.total((line.amount for line in lines_now), currency) - billed.charged
    return InvoiceLine(
        kind=LineKind.LATE_USAGE,
        meter=None,
        description=_description(billed, usage_now),
        period=billed.period,
        quantity=Decimal(1),
        unit="adjustment",
        unit_price=amount.minor_units,
        amount=amount,
        details=(
            ("invoice", billed.number),
            ("start", billed.period.start.date().isoformat()),
            ("end", (billed.period.end - timedelta(microseconds=1)).date().isoformat()),
        ),
    )


def _description(billed: BilledPeriod, usage_now: UsageTotals) -> str:
    changes = ", ".join(
        f"{'+' if delta > 0 else ''}{plain(delta)} {meter}"
        for meter, delta in ((m, usage_now[m] - billed.usage.get(m, Decimal(0))) for m in usage_now)
        if delta
    )
    start, end = billed.period.start.date().isoformat(), billed.period.end.date().isoformat()
    return f"Late usage for {start} to {end}, invoice {billed.number} ({changes})"
