"""The one interface every price model implements: what a quantity of units costs.

A model (`per_unit`, `package`, `graduated`, `volume`) is a frozen dataclass with one job,
`minor_amount`: the unrounded amount, in minor units of its currency, of `quantity` units
counted over one billing period. Adding a model is adding a module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal

from pricing.errors import InvalidQuantity
from pricing.money import Currency, Money, exact


class Price(ABC):
    currency: Currency

    @abstractmethod
    def minor_amount(self, quantity: Decimal) -> Decimal:
        """Unrounded minor units for `quantity` >= 0; run it under `money.ARITHMETIC`."""

    @abstractmethod
    def to_spec(self) -> dict[str, object]:
        """The Stripe-shaped JSON object (design.md §3) that `price_spec.parse_price` reads back."""

    @exact
    def charge(self, quantity: Decimal) -> Money:
        """What `quantity` units cost, unrounded; refuses negative or non-finite quantities."""
        if not quantity.is_finite() or quantity < 0:
            raise InvalidQuantity("quantity", "must be a finite, non-negative number")
        return Money(self.minor_amount(quantity), self.currency)
