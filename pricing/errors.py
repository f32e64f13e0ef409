"""What the pricing domain raises. Every error about bad input names the field it is about.

The HTTP layer turns `InvalidField` subclasses into 422 problem responses and the CLI prints
them; both show `field` as a JSON path such as `price.tiers[1].up_to`.
"""

from __future__ import annotations


class PricingError(Exception):
    """Base of every error the pricing domain raises on purpose."""


class InvalidField(PricingError):
    """Input that cannot be priced; `field` is the JSON path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def under(self, prefix: str) -> InvalidField:
        """The same error with its field path nested under `prefix` (e.g. `[3]` or `rates`)."""
        if not prefix:
            return self
        joined = prefix + ("" if not self.field or self.field.startswith("[") else ".") + self.field
        return type(self)(joined, self.message)


class InvalidPrice(InvalidField):
    """A price spec (design.md §3) that is malformed or breaks one of Stripe's rules."""


class InvalidQuantity(InvalidField):
    """A quantity that is not a finite, non-negative decimal."""


class InvalidCatalog(InvalidField):
    """A catalog document or one of its versions that cannot be loaded."""


class InvalidSettings(InvalidField):
    """Tenant pricing settings, a contract, a licence or a spot series that cannot be loaded."""


class InvalidUsage(InvalidField):
    """Hourly usage that is negative, not on an hour, or outside the period being rated."""


class InvalidLedgerEntry(InvalidField):
    """A credit ledger entry that would overdraw a grant, use an expired one, or go back in time."""


class CurrencyMismatch(PricingError):
    """Two amounts in different currencies were combined."""


class NoPriceInForce(PricingError):
    """No catalog version, contract or spot price covers the instant being rated."""
