"""FX: money converted at a dated reference rate from a rates table (issue 4, design.md §7).

The ECB publishes one figure per currency per business day, "1 EUR = 1.0811 USD", in two CSV
layouts: the daily `eurofxref.csv` and the historical `eurofxref-hist.csv`
(https://www.ecb.europa.eu/stats/policy_and_exchange_rates/euro_reference_exchange_rates/).
A `RateTable` holds those figures by date; `RateTable.rate` picks the latest published on or
before the invoice date and crosses through EUR; `convert` applies it.

A cross rate such as USD→JPY = 161.23 / 1.0811 has no finite decimal expansion, so an `FxRate`
keeps the two published figures instead of their quotient, and `convert` divides once, at
`FX_ARITHMETIC`'s precision. The result is unrounded minor units of the target currency: the
invoice line rounds it once, ROUND_HALF_UP, with `Money.rounded()` (JPY 0 digits, KWD 3).
"""

from __future__ import annotations

import bisect
import csv
import decimal
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from pricing.errors import CurrencyMismatch, InvalidField, PricingError
from pricing.money import Currency, Money, plain

# Why 60 digits and not the 34 of `money.ARITHMETIC`: a converted amount is a quotient, and the
# rounding that follows must see which side of a half minor unit it falls on. Division is
# correctly rounded, so 60 significant digits decide every half-way case exactly while
# amount × rate stays below 10^(59 - the divisor's decimal places) minor units; with rates of at
# most `MAX_RATE_DECIMALS` places that is 10^41 minor units, far past any invoice.
FX_ARITHMETIC = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# amount × published figure must be exact; this context raises if it ever is not.
_EXACT = FX_ARITHMETIC.copy()
_EXACT.traps[decimal.Inexact] = True

MAX_RATE_DECIMALS = 18
# The ECB skips weekends and TARGET holidays (at most four days in a row, at Easter); a table
# whose newest rate is older than this is stale, not on holiday.
MAX_RATE_AGE = timedelta(days=7)
ECB_SOURCE = "ECB euro reference rate"

EUR = Currency("eur")


class NoRateInForce(PricingError):
    """The rates table has no rate for a currency, or none published recently enough."""


class InvalidRates(InvalidField):
    """A rates file that cannot be loaded; `field` names the line and column."""


def _check_figure(value: Decimal, field: str, error: type[InvalidField] = InvalidField) -> None:
    if not value.is_finite() or value <= 0:
        raise error(field, f"a rate must be a positive number, not {value}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_RATE_DECIMALS:
        raise error(field, f"a rate has at most {MAX_RATE_DECIMALS} decimal places, not {value}")


@dataclass(frozen=True, slots=True)
class FxRate:
    """`from_units` of `from_currency` are worth `to_units` of `to_currency`, as of `rate_date`.

    For a rate the ECB publishes directly `from_units` is 1 (1 EUR = 161.23 JPY); a cross rate
    keeps both published figures (1.0811 USD = 161.23 JPY).
    """

    from_currency: Currency
    to_currency: Currency
    rate_date: date
    source: str
    to_units: Decimal
    from_units: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        _check_figure(self.to_units, "rate")
        _check_figure(self.from_units, "rate")

    @property
    def rate(self) -> Decimal:
        """Units of `to_currency` per unit of `from_currency`, to 60 significant digits."""
        return FX_ARITHMETIC.divide(self.to_units, self.from_units)

    def inverse(self) -> FxRate:
        return FxRate(
            self.to_currency, self.from_currency, self.rate_date, self.source, self.from_units, self.to_units
        )

    def printed_rate(self, significant: int = 10) -> str:
        """The rate as an invoice prints it: a published figure as published, a cross rate
        (whose decimals never end) to `significant` digits, half up."""
        if self.from_units == 1:
            return plain(self.to_units)
        shown = decimal.Context(prec=significant, rounding=decimal.ROUND_HALF_UP).plus(self.rate)
        return plain(shown)

    def __str__(self) -> str:
        return (
            f"1 {self.from_currency.code.upper()} = {self.printed_rate()} "
            f"{self.to_currency.code.upper()} ({self.source}, {self.rate_date.isoformat()})"
        )


def convert(amount: Money, fx: FxRate) -> Money:
    """`amount` in `fx.to_currency`, unrounded: the invoice line rounds it once, `Money.rounded()`."""
    if amount.currency != fx.from_currency:
        raise CurrencyMismatch(f"a {fx.from_currency} rate cannot convert an amount in {amount.currency}")
    shift = fx.to_currency.digits - fx.from_currency.digits
    product = _EXACT.multiply(amount.minor_units, fx.to_units).scaleb(shift, context=_EXACT)
    return Money(FX_ARITHMETIC.divide(product, fx.from_units), fx.to_currency)


class RateTable:
    """EUR reference rates by date: `rates[day][currency]` units of `currency` per 1 EUR."""

    def __init__(self, rates: Mapping[date, Mapping[Currency, Decimal]], source: str = ECB_SOURCE) -> None:
        self.source = source
        self._rates = {day: dict(row) for day, row in rates.items()}
        self._dates = sorted(self._rates)
        for day, row in self._rates.items():
            if EUR in row:
                raise InvalidRates(f"{day.isoformat()}.EUR", "rates are per EUR; EUR itself is not listed")
            for currency, value in row.items():
                _check_figure(value, f"{day.isoformat()}.{currency.code.upper()}", InvalidRates)

    @classmethod
    def from_ecb_csv(cls, text: str | Iterable[str], source: str = ECB_SOURCE) -> RateTable:
        """A table from either ECB layout: `eurofxref.csv` or `eurofxref-hist.csv` (text or lines)."""
        return cls(_parse_ecb_csv(text.splitlines() if isinstance(text, str) else text), source)

    @property
    def dates(self) -> tuple[date, ...]:
        return tuple(self._dates)

    @property
    def currencies(self) -> frozenset[Currency]:
        """Every currency with at least one published rate, EUR included."""
        return frozenset({EUR}.union(*self._rates.values()))

    def items(self) -> Iterator[tuple[date, Currency, Decimal]]:
        """(day, currency, units per 1 EUR) for every published figure, by day."""
        for day in self._dates:
            for currency, per_eur in self._rates[day].items():
                yield day, currency, per_eur

    def _per_eur(self, day: date, currency: Currency) -> Decimal | None:
        return Decimal(1) if currency == EUR else self._rates[day].get(currency)

    def rate(
        self, from_currency: Currency, to_currency: Currency, on: date, max_age: timedelta = MAX_RATE_AGE
    ) -> FxRate:
        """The rate in force `on`: both figures from the latest date on or before it, at most
        `max_age` earlier, on which both currencies were published (ECB rates are published around
        16:00 CET, so an invoice cut before then should ask for the previous day)."""
        if from_currency == to_currency:
            return FxRate(from_currency, to_currency, on, "same currency", Decimal(1))
        for currency in (from_currency, to_currency):
            if currency not in self.currencies:
                raise NoRateInForce(f"{self.source} has no rate for {currency.code.upper()}")
        index = bisect.bisect_right(self._dates, on)
        while index > 0 and self._dates[index - 1] >= on - max_age:
            index -= 1
            day = self._dates[index]
            from_units, to_units = self._per_eur(day, from_currency), self._per_eur(day, to_currency)
            if from_units is not None and to_units is not None:
                return FxRate(from_currency, to_currency, day, self.source, to_units, from_units)
        pair = f"{from_currency.code.upper()}/{to_currency.code.upper()}"
        raise NoRateInForce(
            f"{self.source} has no {pair} rate published between {(on - max_age).isoformat()} and {on.isoformat()}"
        )


_MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "january", "february", "march", "april", "may", "june",
            "july", "august", "september", "october", "november", "december",
        ),
        start=1,
    )
}  # fmt: skip
_FIGURE = re.compile(r"\d+(\.\d+)?")
_MISSING = "N/A"


def _parse_date(text: str, field: str) -> date:
    """`2026-11-24` (historical file) or `24 November 2026` (daily file), never locale-dependent."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    parts = text.split()
    if len(parts) == 3 and parts[0].isdigit() and parts[1].lower() in _MONTHS and parts[2].isdigit():
        try:
            return date(int(parts[2]), _MONTHS[parts[1].lower()], int(parts[0]))
        except ValueError:
            pass
    raise InvalidRates(field, f"{text!r} is not a date like 2026-11-24 or 24 November 2026")


def _parse_figure(text: str, field: str) -> Decimal | None:
    """A published figure straight from its text, never through float; `N/A` is no figure."""
    if text == _MISSING:
        return None
    if not _FIGURE.fullmatch(text):
        raise InvalidRates(field, f"{text!r} is not a rate like 1.0811 or {_MISSING}")
    value = Decimal(text)
    _check_figure(value, field, InvalidRates)
    return value


def _parse_header(cells: list[str]) -> dict[int, Currency]:
    """Column index → currency; empty header cells (the trailing comma) name no column."""
    if not cells or cells[0].lstrip("\ufeff").strip().lower() != "date":
        raise InvalidRates("line 1", "an ECB rates file starts with a header row beginning 'Date'")
    columns: dict[int, Currency] = {}
    for index, cell in enumerate(cells[1:], start=1):
        name = cell.strip()
        if not name:
            continue
        try:
            currency = Currency.of(name)
        except InvalidField as error:
            raise InvalidRates(f"line 1.{name}", error.message) from None
        if currency == EUR or currency in columns.values():
            raise InvalidRates(f"line 1.{name}", "EUR or a repeated currency cannot be a column")
        columns[index] = currency
    return columns


def _parse_ecb_csv(lines: Iterable[str]) -> dict[date, dict[Currency, Decimal]]:
    reader = csv.reader(lines)
    columns = _parse_header(next(reader, []))
    rates: dict[date, dict[Currency, Decimal]] = {}
    for cells in reader:
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        line = f"line {reader.line_num}"
        day = _parse_date(cells[0], line)
        if day in rates:
            raise InvalidRates(line, f"{day.isoformat()} appears twice")
        if len(cells) <= max(columns, default=0):
            raise InvalidRates(line, f"{len(cells)} cells, fewer than the header's columns")
        row: dict[Currency, Decimal] = {}
        for index, cell in enumerate(cells[1:], start=1):
            currency = columns.get(index)
            if currency is None:
                if cell:
                    raise InvalidRates(f"{line}.column {index + 1}", f"{cell!r} under no currency")
                continue
            figure = _parse_figure(cell, f"{line}.{currency.code.upper()}")
            if figure is not None:
                row[currency] = figure
        rates[day] = row
    if not rates:
        raise InvalidRates("", "an ECB rates file with no dated rows")
    return rates
