"""`billing tax quote`: the VAT or sales tax on a net amount, without Ray or a database.

Prints one JSON object `{"rate", "tax", "total", "reverse_charge", "note"}` (design.md §2), using
the rates in force on `--date` (default today). Bad input prints the failing field on stderr and
exits 1, with nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from decimal import Decimal, InvalidOperation

from pricing.errors import InvalidField
from pricing.money import Currency, Money
from pricing.tax import tax_for


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    quote = actions.add_parser("quote", help="the tax on a net amount between a seller and a buyer")
    quote.add_argument("--net", required=True, help="net amount in major units, e.g. 100.00")
    quote.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    quote.add_argument("--seller-country", required=True, help="ISO 3166 code, e.g. DE")
    quote.add_argument("--buyer-country", required=True, help="ISO 3166 code, e.g. FR")
    quote.add_argument("--buyer-vat-id", help="the buyer's EU VAT id, for business buyers")
    quote.add_argument("--buyer-region", help="the buyer's US state, e.g. CA")
    quote.add_argument("--date", help="YYYY-MM-DD whose rates apply (default: today)")


def run(args: argparse.Namespace) -> int:
    if args.action != "quote":  # pragma: no cover - argparse allows only known actions
        return 2
    try:
        currency = Currency.of(args.currency)
        quote = tax_for(
            _net(args.net, currency),
            args.seller_country,
            args.buyer_country,
            _day(args.date),
            buyer_vat_id=args.buyer_vat_id,
            buyer_region=args.buyer_region,
        )
    except InvalidField as error:
        print(f"billing tax quote: {error}", file=sys.stderr)
        return 1
    print(json.dumps(quote.to_json()))
    return 0


def _net(text: str, currency: Currency) -> Money:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidField("net", f"{text!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise InvalidField("net", f"{text!r} is not a finite amount")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > currency.digits:
        allowed = f"{currency.code.upper()} has {currency.digits}"
        raise InvalidField("net", f"{text!r} has more decimal places than {allowed}")
    return Money.from_major(amount, currency)


def _day(text: str | None) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidField("date", f"{text!r} is not a date YYYY-MM-DD") from None
