"""Money: `Decimal` minor units that carry an ISO 4217 currency, rounded only when asked.

Prices follow Stripe and count in minor units (cents), so a `Money` holds minor units too and
stays unrounded through all arithmetic. The only rounding point is `Money.rounded()`:
ROUND_HALF_UP to a whole minor unit, applied to an invoice line (design.md §7). How many
digits a currency's minor unit has comes from the ISO 4217 table itself (the maintained `iso4217`
package), not from a table of our own: JPY has 0, BHD and KWD 3, CLF 4, and HUF, COP, IDR 2.
CLDR's figure (Babel's `get_currency_precision`) is a cash-rounding habit, not the standard, so
it is used only for the few withdrawn codes ISO no longer lists (issue 14, finding 9).
Payment providers keep their own exponents at their edge (payments/).
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import ParamSpec, TypeVar

import iso4217
from babel.numbers import get_currency_precision, list_currencies

from pricing.errors import CurrencyMismatch, InvalidField

# Every pricing computation runs in this context, so a caller that changed the thread's
# decimal context (precision, rounding, traps) cannot change an amount. 34 digits is
# IEEE decimal128: ample for 12-decimal-place prices times large quantities.
ARITHMETIC = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def exact(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `function` under the pricing decimal context, whatever context the caller has."""

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with decimal.localcontext(ARITHMETIC):
            return function(*args, **kwargs)

    return wrapper


@cache
def _iso_codes() -> frozenset[str]:
    return frozenset(code.lower() for code in list_currencies())


@cache
def minor_unit_digits(code: str) -> int:
    """Digits after the decimal point of the currency's ISO 4217 minor unit (USD 2, JPY 0, BHD 3,
    HUF 2). Codes ISO lists without a minor unit (gold, SDR: "N.A.") and withdrawn ones fall back
    to CLDR's figure."""
    try:
        exponent = iso4217.Currency(code.upper()).exponent
    except (ValueError, KeyError):
        exponent = None
    return int(get_currency_precision(code.upper())) if exponent is None else int(exponent)


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency, written lowercase as Stripe writes it (`usd`)."""

    code: str

    def __post_init__(self) -> None:
        if self.code not in _iso_codes():
            raise InvalidField("currency", f"unknown ISO 4217 currency {self.code!r}")

    @classmethod
    def of(cls, code: str) -> Currency:
        """The currency for a code in any letter case; raises `InvalidField("currency", ...)`."""
        return cls(code.strip().lower())

    @property
    def digits(self) -> int:
        return minor_unit_digits(self.code)

    @property
    def invoice_step(self) -> int:
        """Minor units an invoice amount is a multiple of: 1, except for the currencies whose
        minor unit has three or four digits (BHD, IQD, JOD, KWD, LYD, OMR, TND; CLF), whose
        invoice lines and tax go to the hundredth (10 fils): EN 16931 carries amounts with two
        decimals at most (BR-DEC-*, UBL-DT-01), and Stripe too wants their last digit 0. The
        amounts are still shown with the currency's ISO 4217 digits (`15.400 KWD`)."""
        return int(10 ** max(0, self.digits - 2))

    def __str__(self) -> str:
        return self.code


_ONE = Decimal(1)


def round_half_up(minor_units: Decimal) -> Decimal:
    """Round to a whole minor unit, halves away from zero (ROUND_HALF_UP)."""
    return minor_units.quantize(_ONE, rounding=ROUND_HALF_UP, context=ARITHMETIC)


def plain(value: Decimal) -> str:
    """A decimal as a plain string: no exponent, no trailing fractional zeros, no `-0`."""
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of `currency`, unrounded until `rounded()` is called."""

    minor_units: Decimal
    currency: Currency

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def from_major(cls, major_units: Decimal, currency: Currency) -> Money:
        """`Money.from_major(Decimal("12.70"), usd)` is 1270 minor units."""
        return cls(major_units.scaleb(currency.digits, context=ARITHMETIC), currency)

    @classmethod
    def total(cls, amounts: Iterable[Money], currency: Currency) -> Money:
        result = cls.zero(currency)
        for amount in amounts:
            result = result + amount
        return result

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(ARITHMETIC.add(self.minor_units, other.minor_units), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(ARITHMETIC.subtract(self.minor_units, other.minor_units), self.currency)

    def __neg__(self) -> Money:
        return Money(ARITHMETIC.minus(self.minor_units), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units < other.minor_units

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor_units <= other.minor_units

    def times(self, factor: Decimal) -> Money:
        return Money(ARITHMETIC.multiply(self.minor_units, factor), self.currency)

    def is_zero(self) -> bool:
        return self.minor_units.is_zero()

    def rounded(self) -> Money:
        """This amount rounded to a whole minor unit with ROUND_HALF_UP: an invoice line."""
        return Money(round_half_up(self.minor_units), self.currency)

    def rounded_for_invoice(self) -> Money:
        """Rounded half up to the currency's `invoice_step`: `rounded()` for all but the few
        currencies with more than two decimals."""
        step = self.currency.invoice_step
        if step == 1:
            return self.rounded()
        return Money(round_half_up(ARITHMETIC.divide(self.minor_units, Decimal(step))) * step, self.currency)

    def minor_units_int(self) -> int:
        """Whole minor units after rounding, as Stripe's integer `amount` fields carry them."""
        return int(round_half_up(self.minor_units))

    def major_units(self) -> Decimal:
        """The rounded amount in major units with exactly the currency's digits (`12.70`)."""
        digits = self.currency.digits
        major = round_half_up(self.minor_units).scaleb(-digits, context=ARITHMETIC)
        major = major.quantize(Decimal(1).scaleb(-digits), context=ARITHMETIC)
        return major.copy_abs() if major.is_zero() else major  # never print "-0.00"

    def format_major(self) -> str:
        """`"12.70"` for 1270 cents, `"1235"` for 1235 yen: design.md §4 amount strings."""
        return format(self.major_units(), "f")

    def __str__(self) -> str:
        return f"{self.format_major()} {self.currency.code.upper()}"
