"""Volume tiers: the tier the whole quantity falls in prices every unit (Stripe `volume`).

Six fonts bill all six at the 6-10 rate ($39). Because one tier prices the whole quantity, the
total can drop when the quantity crosses into a cheaper tier. That tier's flat amount is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pricing.money import Currency
from pricing.price import Price
from pricing.price_tiers import PriceTier


@dataclass(frozen=True)
class VolumePrice(Price):
    currency: Currency
    tiers: tuple[PriceTier, ...]

    def tier_for(self, quantity: Decimal) -> PriceTier:
        return next(tier for tier in self.tiers if tier.covers(quantity))

    def minor_amount(self, quantity: Decimal) -> Decimal:
        tier = self.tier_for(quantity)
        return quantity * tier.unit_amount + tier.flat_amount

    def to_spec(self) -> dict[str, object]:
        return {
            "currency": self.currency.code,
            "billing_scheme": "tiered",
            "tiers_mode": "volume",
            "tiers": [tier.to_spec() for tier in self.tiers],
        }
