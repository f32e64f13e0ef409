"""`billing price quote [FILE]`: price quantities under price specs, without Ray or a database.

Reads `{"price": PRICE, "quantity": "DECIMAL"}` or a JSON array of them from FILE or stdin and
prints one JSON object per item, in order (design.md §2). Bad input prints the failing field on
stderr and exits 1, with nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import NoReturn, TextIO

from pricing.errors import InvalidField
from pricing.quote import quote_all


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    quote = actions.add_parser("quote", help="quote {price, quantity} items from JSON")
    quote.add_argument("file", nargs="?", default="-", help="JSON file (default: stdin)")


def run(args: argparse.Namespace) -> int:
    if args.action != "quote":  # pragma: no cover - argparse allows only known actions
        return 2
    try:
        document = _read_json(args.file)
    except (OSError, ValueError) as error:  # a missing file, malformed JSON, NaN
        source = "stdin" if args.file == "-" else args.file
        return _fail(f"cannot read JSON from {source}: {error}")
    try:
        lines = [json.dumps(item.to_json()) for item in quote_all(document)]
    except InvalidField as error:
        return _fail(str(error))
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def _read_json(path: str) -> object:
    if path == "-":
        return _parse(sys.stdin)
    with open(path, encoding="utf-8") as stream:
        return _parse(stream)


def _parse(stream: TextIO) -> object:
    # Decimal for every JSON number with a fraction, so no binary float touches an amount.
    return json.load(stream, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number")


def _fail(message: str) -> int:
    print(f"billing price quote: {message}", file=sys.stderr)
    return 1
