"""Major-unit Decimal amounts to a provider's integer minor units and back, exactly or not at all.

An invoice total is already rounded to its currency's minor unit (design.md §7), so converting it
must never round again: an amount with more fractional digits than the currency has is refused
(`InvalidAmount`), not silently rounded. The number of digits is the currency's ISO 4217 exponent
from `pricing.money.Currency`, unless a provider documents otherwise (see each adapter).
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from payments.errors import InvalidAmount
from pricing.money import Currency

# Enough digits for any amount a bank can move; Inexact is trapped so a conversion that would
# drop a digit raises instead of rounding.
_EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


def _checked(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal):  # a float has already lost the cents it claims to have
        raise InvalidAmount(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite() or amount.is_signed():
        raise InvalidAmount(f"amount must be finite and not negative, got {amount}")
    return amount


def to_minor_units(amount: Decimal, currency: Currency, exponent: int | None = None) -> int:
    """`Decimal("12.70")` USD is 1270; `Decimal("12.705")` USD raises `InvalidAmount`.

    `exponent` overrides the ISO 4217 digits for a provider that counts differently.
    """
    digits = currency.digits if exponent is None else exponent
    try:
        whole = _checked(amount).scaleb(digits, context=_EXACT).quantize(Decimal(1), context=_EXACT)
    except decimal.Inexact:
        raise InvalidAmount(f"{amount} {currency.code} has more than {digits} decimal places") from None
    return int(whole)


def from_minor_units(minor_units: int, currency: Currency, exponent: int | None = None) -> Decimal:
    """1270 USD cents is `Decimal("12.70")`: always exactly the currency's digits."""
    digits = currency.digits if exponent is None else exponent
    return Decimal(minor_units).scaleb(-digits, context=_EXACT)


def format_major(amount: Decimal, currency: Currency, exponent: int | None = None) -> str:
    """The amount as a plain string with exactly the currency's digits (`"12.70"`, `"1235"`)."""
    return format(from_minor_units(to_minor_units(amount, currency, exponent), currency, exponent), "f")


def parse_major(text: str, currency: Currency, exponent: int | None = None) -> Decimal:
    """A provider's decimal string (`"12.70"`) as a Decimal, checked to be exact for the currency."""
    try:
        amount = Decimal(text)
    except decimal.InvalidOperation:
        raise InvalidAmount(f"not a decimal amount: {text!r}") from None
    return from_minor_units(to_minor_units(amount, currency, exponent), currency, exponent)
