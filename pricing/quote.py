"""Quoting: what a quantity costs under a price spec, in the shape `billing price quote` prints.

design.md §2: `{"currency", "amount_decimal" (unrounded minor units), "amount" (whole minor
units, ROUND_HALF_UP), "total" (major units with the currency's ISO 4217 digits)}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pricing.errors import InvalidPrice, InvalidQuantity
from pricing.json_fields import as_decimal, as_object, child, reject_unknown_keys
from pricing.money import Money, plain
from pricing.price_spec import parse_price

_ITEM_KEYS = frozenset({"price", "quantity"})


@dataclass(frozen=True, slots=True)
class Quote:
    amount: Money  # unrounded

    def to_json(self) -> dict[str, object]:
        return {
            "currency": self.amount.currency.code,
            "amount_decimal": plain(self.amount.minor_units),
            "amount": self.amount.minor_units_int(),
            "total": self.amount.format_major(),
        }


def quote(document: object, field: str = "") -> Quote:
    """Quote one `{"price": PRICE, "quantity": "DECIMAL"}` object."""
    item = as_object(document, field or "(item)", InvalidPrice)
    reject_unknown_keys(item, _ITEM_KEYS, field, InvalidPrice)
    price = parse_price(item.get("price"), child(field, "price"))
    quantity = as_decimal(item.get("quantity"), child(field, "quantity"), InvalidQuantity)
    return Quote(price.charge(quantity))


def quote_all(document: object) -> list[Quote]:
    """Quote one item object or a JSON array of them, in order; fields of item i read `[i].…`."""
    if isinstance(document, list):
        return [quote(item, f"[{index}]") for index, item in enumerate(document)]
    return [quote(document)]
