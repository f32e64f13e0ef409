"""Package pricing: per-unit pricing of whole packages (Stripe `transform_quantity`).

The quantity is divided by `divide_by` and rounded up or down to whole packages before the
unit amount applies: $10 per 5 users, rounding up, bills 6 users as 2 packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from pricing.money import Currency, plain
from pricing.price import Price


class PackageRounding(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class PackagePrice(Price):
    currency: Currency
    unit_amount: Decimal  # minor units per package
    divide_by: int
    rounding: PackageRounding

    def packages(self, quantity: Decimal) -> Decimal:
        # Integer division and remainder are exact; a rounded quotient could make
        # 0.999... look like a whole package.
        whole, remainder = divmod(quantity, Decimal(self.divide_by))
        if self.rounding is PackageRounding.UP and remainder:
            return whole + 1
        return whole

    def minor_amount(self, quantity: Decimal) -> Decimal:
        return self.packages(quantity) * self.unit_amount

    def to_spec(self) -> dict[str, object]:
        return {
            "currency": self.currency.code,
            "billing_scheme": "per_unit",
            "unit_amount_decimal": plain(self.unit_amount),
            "transform_quantity": {
                "divide_by": self.divide_by,
                "round": self.rounding.value,
            },
        }
