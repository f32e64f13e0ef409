"""Reading typed values out of plain JSON documents, naming the field that is wrong.

Every loader in `pricing/` (price specs, catalog, contracts, ledgers) reads its JSON through
these helpers, so the rules are the same everywhere: decimals come as decimal strings, integers
or `Decimal` (JSON parsed with `parse_float=Decimal`), never as binary floats; instants are
ISO 8601 with an offset and are kept in UTC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from pricing.errors import InvalidField
from pricing.money import Currency

_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# Sanity bounds: a quadrillion units, or more decimal places than any computed quantity carries
# (a 34-digit quotient), is a bug upstream rather than something to price.
_LARGEST_EXPONENT = 15
_MOST_PLACES = 40


def decimal_json(text: str | bytes) -> object:
    """JSON with every non-integer number read as a Decimal: no binary float touches a price."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def child(parent: str, key: str | int) -> str:
    """The JSON path of `key` under `parent`: `child("price", "tiers")` is `price.tiers`."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def as_object(value: object, field: str, error: type[InvalidField]) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise error(field, "must be a JSON object")
    return value


def as_list(value: object, field: str, error: type[InvalidField]) -> Sequence[object]:
    if not isinstance(value, list | tuple):
        raise error(field, "must be a JSON array")
    return value


def reject_unknown_keys(
    document: Mapping[str, object],
    known: frozenset[str],
    field: str,
    error: type[InvalidField],
) -> None:
    """Refuse keys we do not understand, so a typo (`tier_mode`) is an error, not a default."""
    for key in document:
        if key not in known:
            raise error(child(field, key), "is not a known field")


def as_string(value: object, field: str, error: type[InvalidField]) -> str:
    if not isinstance(value, str) or not value:
        raise error(field, "must be a non-empty string")
    return value


def as_decimal(
    value: object,
    field: str,
    error: type[InvalidField],
    *,
    max_places: int | None = None,
    allow_negative: bool = False,
) -> Decimal:
    """A decimal from a decimal string, an integer or a `Decimal`; floats are refused."""
    number = _to_decimal(value, field, error)
    if not number.is_finite():
        raise error(field, "must be a finite number")
    if number.is_zero():
        return Decimal(0)
    places = _decimal_places(number)
    if number.adjusted() > _LARGEST_EXPONENT or places > _MOST_PLACES:
        raise error(field, "is out of range")
    if max_places is not None and places > max_places:
        raise error(field, f"must have at most {max_places} decimal places")
    if number < 0 and not allow_negative:
        raise error(field, "must not be negative")
    return number


def _decimal_places(number: Decimal) -> int:
    """Places after the point that matter: 3 for `0.125`, 1 for `1.50`, 0 for `1E+3`."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # callers pass finite numbers only
    if exponent >= 0:
        return 0
    trailing_zeros = 0
    for digit in reversed(digits):  # counted, not via a string: this runs for every quantity rated
        if digit:
            break
        trailing_zeros += 1
    return max(0, -(exponent + trailing_zeros))


def _to_decimal(value: object, field: str, error: type[InvalidField]) -> Decimal:
    if isinstance(value, bool):
        raise error(field, "must be a decimal number, not a boolean")
    if isinstance(value, float):
        raise error(
            field,
            "must be a decimal string or an exact number, not a binary float "
            "(parse JSON with parse_float=Decimal)",
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)  # the pattern admits only text Decimal reads
    raise error(field, 'must be a decimal number or a decimal string such as "0.1"')


def as_currency(value: object, field: str, error: type[InvalidField]) -> Currency:
    """An ISO 4217 code in any letter case, such as `"usd"`."""
    try:
        return Currency.of(as_string(value, field, error))
    except InvalidField as unknown:
        raise error(field, unknown.message) from None


def as_int(value: object, field: str, error: type[InvalidField], *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(field, "must be an integer")
    if value < minimum:
        raise error(field, f"must be at least {minimum}")
    return value


def as_instant(value: object, field: str, error: type[InvalidField]) -> datetime:
    """An ISO 8601 instant with an explicit offset (`2025-03-15T00:00:00Z`), in UTC."""
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            raise error(field, "must be an ISO 8601 instant such as 2025-03-15T00:00:00Z") from None
    else:
        raise error(field, "must be an ISO 8601 instant string")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise error(field, "must carry a UTC offset (a trailing Z or +00:00)")
    return instant.astimezone(UTC)


def instant_text(instant: datetime) -> str:
    """The JSON form of an instant: ISO 8601 in UTC with a trailing Z."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
