"""One language per invoice: gettext catalogs (`invoicing/locale/<lang>/LC_MESSAGES/invoice.po`)
and Babel formats for numbers, money and dates.

The `.po` files are the source; each is compiled to a `.mo` in memory the first time a language
is asked for (Babel's `read_po` and `write_mo`), so a fresh clone installed with `pip install -e .`
works with no build step and a catalog can never be older than its source. The msgids are the
English text, so English needs no catalog of its own beyond the file that lists them.

A `Text` is a message and its parameters; parameters that are themselves words (a tier, a meter)
are `Text` too, and dates and amounts are formatted for the locale, so nothing English reaches a
non-English invoice by way of a parameter.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent, parse_pattern

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "es", "de", "fr")  # every invoice is in one of these; others fall back to English
DOMAIN = "invoice"


@dataclass(frozen=True, slots=True)
class Amount:
    """Money as a parameter of a message: major units and an ISO 4217 code."""

    value: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Text:
    """A message to translate, with named parameters (`{tier}`) filled in after translation."""

    msgid: str
    params: tuple[tuple[str, Param], ...] = ()
    literal: bool = False  # not a message: printed as it is (a stored description, a name)

    @classmethod
    def of(cls, msgid: str, **params: Param) -> Text:
        return cls(msgid, tuple(params.items()))

    @classmethod
    def verbatim(cls, text: str) -> Text:
        return cls(text, (), True)


@dataclass(frozen=True, slots=True)
class Country:
    """A country as a parameter: its name in the invoice language."""

    code: str


@dataclass(frozen=True, slots=True)
class Percent:
    """A rate in percent as a parameter: `19%` (en), `19 %` (de, fr)."""

    value: Decimal


Param = str | int | date | Amount | Text | Country | Percent


def language_of(locale: str) -> str:
    """The invoice language for a tenant's locale: "de_AT" -> "de"; unsupported -> "en"."""
    language = Locale.parse(locale.replace("-", "_")).language
    return language if language in LANGUAGES else "en"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language` (English: no translation)."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if language == "en" or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


class Localizer:
    """Words and formats of one invoice language and locale."""

    def __init__(self, locale: str) -> None:
        self.language = language_of(locale)
        parsed = Locale.parse(locale.replace("-", "_"))
        # A tenant whose locale is another language gets the invoice language's own formats.
        self.locale = parsed if parsed.language == self.language else Locale.parse(self.language)
        self._catalog = translations(self.language)

    def gettext(self, msgid: str) -> str:
        return self._catalog.gettext(msgid)

    def text(self, message: Text) -> str:
        if message.literal:
            return message.msgid
        values: Mapping[str, str] = {name: self.param(value) for name, value in message.params}
        return self.gettext(message.msgid).format(**values)

    def param(self, value: Param) -> str:
        if isinstance(value, Text):
            return self.text(value)
        if isinstance(value, Amount):
            return self.money(value.value, value.currency)
        if isinstance(value, date):
            return self.day(value)
        if isinstance(value, Country):
            return self.country(value.code)
        if isinstance(value, Percent):
            return self.percent(value.value)
        return str(value)

    def money(self, amount: Decimal, currency: str) -> str:
        """`1.234,56 €` (de), `€1,234.56` (en), `HUF 1,234.00`: the ISO 4217 digits (not CLDR's)."""
        from pricing.money import minor_unit_digits  # pricing is pure, but keeps this module light

        digits = minor_unit_digits(currency)
        return self._currency(amount.quantize(Decimal(1).scaleb(-digits)), currency, digits, digits)

    def unit_price(self, amount: Decimal, currency: str) -> str:
        """A unit price with the decimals it has: at least the currency's, at most six."""
        from pricing.money import minor_unit_digits

        digits = minor_unit_digits(currency)
        places = max(digits, -int(amount.normalize().as_tuple().exponent))
        return self._currency(amount, currency, digits, min(places, 6))

    def _currency(self, amount: Decimal, currency: str, least: int, most: int) -> str:
        pattern = parse_pattern(self.locale.currency_formats["standard"].pattern)
        pattern.frac_prec = (least, most)
        return str(pattern.apply(amount, self.locale, currency=currency.upper(), currency_digits=False))

    def number(self, value: Decimal) -> str:
        return format_decimal(value, locale=self.locale, decimal_quantization=False)

    def percent(self, rate: Decimal) -> str:
        return format_percent(rate / 100, locale=self.locale, decimal_quantization=False)

    def day(self, day: date) -> str:
        return format_date(day, format="long", locale=self.locale)

    def country(self, code: str) -> str:
        return str(self.locale.territories.get(code.upper(), code.upper()))
