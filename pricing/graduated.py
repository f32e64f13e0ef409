"""Graduated tiers: each tier prices the units that fall inside it (Stripe `graduated`).

Five fonts at $7 and the sixth at $6.50 cost $41.50. A tier's flat amount is added once the
quantity reaches the tier; the first tier's flat amount is due even at quantity 0, as in Stripe.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pricing.money import Currency
from pricing.price import Price
from pricing.price_tiers import PriceTier


@dataclass(frozen=True)
class GraduatedPrice(Price):
    currency: Currency
    tiers: tuple[PriceTier, ...]

    def minor_amount(self, quantity: Decimal) -> Decimal:
        total = Decimal(0)
        lower = Decimal(0)
        for tier in self.tiers:
            upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
            total += tier.flat_amount + (upper - lower) * tier.unit_amount
            if tier.up_to is None or quantity <= tier.up_to:
                break
            lower = tier.up_to  # the quantity goes on into the next tier
        return total

    def to_spec(self) -> dict[str, object]:
        return {
            "currency": self.currency.code,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [tier.to_spec() for tier in self.tiers],
        }
