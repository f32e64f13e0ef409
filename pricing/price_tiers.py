"""Stripe's price tiers: consecutive quantity ranges, each with a unit and a flat amount.

Tier `i` covers quantities in (`up_to` of tier `i-1`, `up_to` of tier `i`]; the first starts at
0 and the last is unbounded. With integer quantities that is Stripe's "previous `up_to` plus
one"; the half-open form also covers fractional quantities and bounds (design.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pricing.errors import InvalidPrice
from pricing.json_fields import child
from pricing.money import plain


@dataclass(frozen=True, slots=True)
class PriceTier:
    up_to: Decimal | None  # inclusive upper bound; None is unbounded ("inf")
    unit_amount: Decimal  # minor units per unit inside the tier
    flat_amount: Decimal = Decimal(0)  # minor units once the quantity reaches the tier

    def covers(self, quantity: Decimal) -> bool:
        """True when `quantity` is at or below this tier's upper bound."""
        return self.up_to is None or quantity <= self.up_to

    def to_spec(self) -> dict[str, object]:
        return {
            "up_to": _bound_to_spec(self.up_to),
            "unit_amount_decimal": plain(self.unit_amount),
            "flat_amount_decimal": plain(self.flat_amount),
        }


def _bound_to_spec(up_to: Decimal | None) -> object:
    if up_to is None:
        return "inf"
    return int(up_to) if up_to == up_to.to_integral_value() else plain(up_to)


def check_tiers(tiers: Sequence[PriceTier], field: str) -> None:
    """Stripe's rules: at least one tier, bounds strictly rising, only the last one unbounded."""
    if not tiers:
        raise InvalidPrice(field, "must list at least one tier")
    previous = Decimal(0)
    for index, tier in enumerate(tiers):
        bound_field = child(child(field, index), "up_to")
        last = index == len(tiers) - 1
        if tier.up_to is None and not last:
            raise InvalidPrice(bound_field, "only the last tier may be unbounded")
        if tier.up_to is not None and last:
            raise InvalidPrice(bound_field, 'the last tier must be unbounded ("inf")')
        if tier.up_to is not None:
            if tier.up_to <= previous:
                raise InvalidPrice(bound_field, "must be greater than the previous tier's bound")
            previous = tier.up_to
