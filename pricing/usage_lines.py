"""Usage charges: each hour at the price in force then, tiers counted over the whole period.

Let `A` be a price's amount for a period total and `C(h)` the billable usage up to and including
hour `h` (usage in billing units, less the reserved quota). Hour `h` is charged
`A(C(h)) - A(C(h-1))` under the price in force at `h`, and the period opens with `A(0)` under the
price in force at its start (a first tier's flat amount, as Stripe charges it). With one price
all period the charges add up to `A(C(end))`, exactly Stripe's amount for the total; when the
price changes on the 15th, hours before are charged at the old price and hours after at the new
one, and graduated tiers, packages and quotas carry on from where the usage had reached. (With
volume tiers an hour can lower what earlier hours cost; the charges still add up to the total.)
Charges from the same source share a line.

Hours in a row under one price are charged together: their charges telescope to
`A(C(last)) - A(C(first - 1))`, so a meter is priced once per part of the terms (a catalog
version and contract in force throughout) rather than every hour, and fewer roundings at the
pricing context's 34 digits come between the total and its charge. A spot-priced meter, whose
price may change every hour, is still charged hour by hour.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby

from pricing.lines import LineKind, RatedLine, average_unit_price
from pricing.meters import Meter
from pricing.money import Money, plain
from pricing.periods import Period
from pricing.terms import PriceSource, Terms

HOUR = timedelta(hours=1)
_ZERO = Decimal(0)
_DISPLAY = Decimal("0.0001")  # quantities in descriptions only; fields keep every digit
_Run = tuple[PriceSource | None, list[tuple[datetime, Decimal]]]  # hours with usage, one price


@dataclass
class _LineTotals:
    source: PriceSource
    first_hour: datetime
    last_hour: datetime
    quantity: Decimal = _ZERO
    billed: Decimal = _ZERO
    amount: Decimal = _ZERO

    def add(self, hour: datetime, quantity: Decimal, billed: Decimal, amount: Decimal) -> None:
        self.last_hour = hour
        self.quantity += quantity
        self.billed += billed
        self.amount += amount


def usage_lines(meter: Meter, hours: Sequence[tuple[datetime, Decimal]], terms: Terms) -> list[RatedLine]:
    """Lines for one meter from `(hour, quantity in the meter's unit)`, hours ascending."""
    unit = terms.unit(meter)
    quota = terms.included(meter)
    lines: dict[tuple[str, str | None], _LineTotals] = {}
    opening = terms.price_at(meter, terms.period.start)
    if opening is not None and opening.price.minor_amount(_ZERO):
        start = terms.period.start
        lines[opening.key] = _LineTotals(opening, start, start, amount=opening.price.minor_amount(_ZERO))
    used_raw = used = billable = _ZERO
    for source, run in _runs(meter, hours, terms):
        for _, raw in run:
            used_raw += raw
        # Convert the running total rather than each run: one rounding, no drift.
        used_before, used = used, unit.from_meter(used_raw)
        billable_before, billable = billable, max(_ZERO, used - quota)
        if source is None:
            continue  # unpriced: costs nothing, still counts towards tiers
        price = source.price
        amount = price.minor_amount(billable) - price.minor_amount(billable_before)
        first, last = run[0][0], run[-1][0]
        totals = lines.setdefault(source.key, _LineTotals(source, first, first))
        totals.add(last, used - used_before, billable - billable_before, amount)
    return [_line(meter, totals, terms, several=len(lines) > 1) for totals in lines.values()]


def _runs(meter: Meter, hours: Sequence[tuple[datetime, Decimal]], terms: Terms) -> list[_Run]:
    """The hours with usage in runs under one price source: each hour alone for a spot-priced
    meter, else the hours within each part of the terms."""
    used = [(hour, raw) for hour, raw in hours if raw]
    if meter in terms.spot:
        return [(terms.price_at(meter, hour), [(hour, raw)]) for hour, raw in used]
    if len(terms.parts) == 1:  # the usual period: one run, without a bisect per hour
        return [(terms.price_at(meter, used[0][0]), used)] if used else []
    ends = [part.period.end for part in terms.parts]
    runs: list[_Run] = []
    for _, grouped in groupby(used, key=lambda item: bisect_right(ends, item[0])):
        run = list(grouped)
        runs.append((terms.price_at(meter, run[0][0]), run))
    return runs


def _line(meter: Meter, totals: _LineTotals, terms: Terms, *, several: bool) -> RatedLine:
    unit = terms.unit(meter)
    period = Period(totals.first_hour, max(totals.last_hour + HOUR, totals.first_hour + HOUR))
    included = totals.quantity - totals.billed
    description = f"{unit.plural[:1].upper()}{unit.plural[1:]}, {totals.source.label}"
    if included:
        description += f", {plain(included.quantize(_DISPLAY))} included"
    if several:
        description += f", {period.start.date()} to {(period.end - HOUR).date()}"
    return RatedLine(
        kind=LineKind.USAGE,
        description=description,
        period=period,
        quantity=totals.quantity,
        unit=unit.name,
        unit_price=average_unit_price(totals.amount, totals.billed),
        amount=Money(totals.amount, terms.currency),
        meter=meter,
        included_quantity=included,
        contract_id=totals.source.key[1],
        details=totals.source.details + (("included", plain(included)),) if included else totals.source.details,
    )
