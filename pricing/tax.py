"""Sales tax and VAT on a net amount: which rate applies, the rounded tax, the note to print.

The rules (issue 4), for a seller in `seller_country` selling to a buyer in `buyer_country`:
- EU seller, buyer in the same member state: that state's VAT, for consumers and businesses alike.
- EU seller, business buyer in another member state (a VAT id of that state, valid by format and
  check digits per python-stdnum): reverse charge, 0%, the recipient accounts for the VAT
  (Art. 196 of Council Directive 2006/112/EC).
- EU seller, consumer in another member state: the buyer's state's VAT. We sell electronically
  supplied services, taxed where the consumer is (Art. 58 of the Directive) and declared through
  the One-Stop Shop; the EUR 10,000 micro-business threshold is not modelled.
- EU seller, buyer outside the EU: 0%, outside the scope of EU VAT.
- US seller and US buyer: the state-level sales tax of the buyer's state (`buyer_region`).
- Anything else: the rate configured for the buyer's country in `configured_rates`, else 0%.

Rates are standard rates from the dated tables in `tax_rates` (see `tax_data/rates.json`). Checking a
VAT id against VIES is an online call, so it belongs to an edge, not here. The tax is computed on
the net and rounded once, ROUND_HALF_UP to the currency's minor unit (design.md §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache

from babel import Locale
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from pricing.errors import InvalidField
from pricing.money import ARITHMETIC, Money, exact, plain
from pricing.tax_rates import check_percent, load_tax_rates

REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Directive 2006/112/EC)"
)
OUTSIDE_EU_VAT_NOTE = "Outside the scope of EU VAT: buyer established outside the EU"

# Babel's territory list has a few codes that are not countries (EU, EZ, UN, ...) or are
# reserved for private use (QO, XA, XB, ZZ); XK (Kosovo) is user-assigned but in real use.
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


@dataclass(frozen=True, slots=True)
class TaxQuote:
    """The tax on one net amount: `rate` in percent, `tax` and `total` rounded to minor units."""

    rate: Decimal
    tax: Money
    total: Money
    reverse_charge: bool
    note: str

    def to_json(self) -> dict[str, object]:
        """The `billing tax quote` object of design.md §2, amounts in major units."""
        return {
            "rate": plain(self.rate),
            "tax": self.tax.format_major(),
            "total": self.total.format_major(),
            "reverse_charge": self.reverse_charge,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class _Rule:
    rate: Decimal
    note: str
    reverse_charge: bool = False


@exact
def tax_for(
    net: Money,
    seller_country: str,
    buyer_country: str,
    on: date,
    buyer_vat_id: str | None = None,
    buyer_region: str | None = None,
    configured_rates: Mapping[str, Decimal] | None = None,
) -> TaxQuote:
    """The tax on `net` for this seller and buyer under the rates in force `on` that day.

    `net` is what the buyer owes before tax; it is rounded to a whole minor unit first, as every
    invoice line is (design.md §7). `configured_rates` maps an ISO 3166 country code to a
    percentage for countries outside the EU and US rules. Raises `InvalidField` naming
    `seller_country`, `buyer_country`, `buyer_vat_id`, `buyer_region` or `date`.
    """
    seller = _country(seller_country, "seller_country")
    buyer = _country(buyer_country, "buyer_country")
    rule = _rule(seller, buyer, on, buyer_vat_id, buyer_region, configured_rates or {})
    base = net.rounded()
    tax = base.times(ARITHMETIC.divide(rule.rate, Decimal(100))).rounded()
    return TaxQuote(rule.rate, tax, base + tax, rule.reverse_charge, rule.note)


def _rule(
    seller: str,
    buyer: str,
    on: date,
    buyer_vat_id: str | None,
    buyer_region: str | None,
    configured_rates: Mapping[str, Decimal],
) -> _Rule:
    eu_rates = load_tax_rates().eu_vat
    if seller in eu_rates:
        if buyer not in eu_rates:
            return _Rule(Decimal(0), OUTSIDE_EU_VAT_NOTE)
        business = buyer_vat_id is not None and buyer_vat_id.strip() != ""
        if business:
            _check_vat_id(buyer_vat_id or "", buyer)
        if business and buyer != seller:
            return _Rule(Decimal(0), REVERSE_CHARGE_NOTE, reverse_charge=True)
        rate = eu_rates[buyer].rate_on(on)
        if buyer == seller:
            return _Rule(rate, f"VAT {plain(rate)}% ({buyer})")
        return _Rule(rate, f"VAT {plain(rate)}% ({buyer}, destination country, EU One-Stop Shop)")
    if seller == "US" and buyer == "US":
        state = _us_state(buyer_region)
        rate = load_tax_rates().us_sales_tax[state].rate_on(on)
        return _Rule(rate, f"Sales tax {plain(rate)}% ({state} state rate; local taxes not included)")
    if buyer in configured_rates:
        rate = check_percent(configured_rates[buyer], f"configured_rates.{buyer}")
        return _Rule(rate, f"Tax {plain(rate)}% ({buyer}, configured rate)")
    return _Rule(Decimal(0), f"No tax charged: no tax rule for a seller in {seller} and a buyer in {buyer}")


def vat_prefix(country: str) -> str:
    """The VAT id prefix of an EU member state: its ISO 3166 code, except Greece's EL."""
    return "EL" if country == "GR" else country


def _check_vat_id(vat_id: str, buyer: str) -> None:
    """Refuse a VAT id that is malformed, fails its check digits, or belongs to another state."""
    try:
        compact = eu_vat.validate(vat_id)  # the compact form, or ValidationError
    except ValidationError as error:
        message = f"{vat_id!r} is not a valid EU VAT id (format or check digits): {error}"
        raise InvalidField("buyer_vat_id", message) from None
    prefix = vat_prefix(buyer)
    # python-stdnum also accepts Greek ids written with the ISO code GR; so do we.
    if not compact.startswith((prefix, buyer)):
        raise InvalidField(
            "buyer_vat_id", f"{vat_id!r} is not a VAT id of {buyer}: it must start with {prefix}"
        )


def _country(code: str, field: str) -> str:
    normalized = code.strip().upper()
    if normalized not in _countries():
        hint = " (Greece is GR; EL is only its VAT prefix)" if normalized == "EL" else ""
        raise InvalidField(field, f"unknown ISO 3166 country code {code!r}{hint}")
    return normalized


def _us_state(region: str | None) -> str:
    states = load_tax_rates().us_sales_tax
    state = (region or "").strip().upper()
    if state not in states:
        known = "a US state or DC as a two-letter code (CA, NY, DC, ...)"
        raise InvalidField("buyer_region", f"{region!r} is not {known}" if region else f"required: {known}")
    return state


@cache
def _countries() -> frozenset[str]:
    codes = (code for code in Locale("en").territories if isinstance(code, str))
    return frozenset(
        code for code in codes if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    )
