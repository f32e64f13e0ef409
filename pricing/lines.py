"""Rated lines: what invoicing prints, one per charge, with the amount before and after rounding."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pricing.meters import Meter
from pricing.money import ARITHMETIC, Money, plain
from pricing.periods import Period


class LineKind(StrEnum):
    USAGE = "usage"
    BASE_FEE = "base_fee"
    DISCOUNT = "discount"
    MINIMUM_TRUE_UP = "minimum_true_up"
    LICENCE = "licence"
    SUPPORT = "support"
    LATE_USAGE = "late_usage"  # usage that reached an already finalized period, billed later


@dataclass(frozen=True)
class RatedLine:
    kind: LineKind
    description: str
    period: Period
    quantity: Decimal  # in `unit`
    unit: str  # "CPU-hour", "month", "year", ...
    # Minor units per billable unit (quantity less included_quantity): exact for a per-unit
    # price, the average over the line for tiered, package and spot prices.
    unit_price: Decimal
    amount: Money  # unrounded
    meter: Meter | None = None
    # The part of `quantity` a reserved quota covered.
    included_quantity: Decimal = Decimal(0)
    # The contract in force for the charge, whose discount applies to it.
    contract_id: str | None = None
    # What the description is made of, as (name, value) pairs, so an invoice can word the line
    # in its own language (invoicing/document.py) instead of printing the English description.
    details: tuple[tuple[str, str], ...] = ()

    @property
    def rounded(self) -> Money:
        """The amount the invoice charges: rounded to the minor unit, ROUND_HALF_UP (§7)."""
        return self.amount.rounded()

    def to_json(self) -> dict[str, object]:
        """Amounts in major units as decimal strings (design.md §4); `amount` is the rounded one."""
        digits = self.amount.currency.digits
        return {
            "kind": self.kind.value,
            "description": self.description,
            "meter": None if self.meter is None else self.meter.value,
            "period": self.period.to_json(),
            "quantity": plain(self.quantity),
            "included_quantity": plain(self.included_quantity),
            "unit": self.unit,
            "unit_price": plain(self.unit_price.scaleb(-digits, context=ARITHMETIC)),
            "amount_unrounded": plain(self.amount.minor_units.scaleb(-digits, context=ARITHMETIC)),
            "amount": self.rounded.format_major(),
            "currency": self.amount.currency.code,
            "contract_id": self.contract_id,
            "details": dict(self.details),
        }


def average_unit_price(amount: Decimal, quantity: Decimal) -> Decimal:
    return amount / quantity if quantity else Decimal(0)
