"""Per-unit pricing: every unit costs the same (Stripe `billing_scheme: per_unit`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pricing.money import Currency, plain
from pricing.price import Price


@dataclass(frozen=True)
class PerUnitPrice(Price):
    currency: Currency
    unit_amount: Decimal  # minor units per unit, up to 12 decimal places

    def minor_amount(self, quantity: Decimal) -> Decimal:
        return quantity * self.unit_amount

    def to_spec(self) -> dict[str, object]:
        return {
            "currency": self.currency.code,
            "billing_scheme": "per_unit",
            "unit_amount_decimal": plain(self.unit_amount),
        }
