"""Reading a price spec (design.md §3, Stripe's Price shape) into one of the price models.

`parse_price` validates the JSON object and returns a `PerUnitPrice`, `PackagePrice`,
`GraduatedPrice` or `VolumePrice`; `price.to_spec()` writes it back. Amounts are minor units
with at most 12 decimal places, as Stripe's `*_decimal` fields. A Stripe Price object as the API
returns it (with `id`, `product`, `recurring`, both `unit_amount` and `unit_amount_decimal`...)
reads as well; keys that would change the amount and that we do not implement are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from pricing.errors import InvalidField, InvalidPrice
from pricing.graduated import GraduatedPrice
from pricing.json_fields import (
    as_currency,
    as_decimal,
    as_int,
    as_list,
    as_object,
    child,
    reject_unknown_keys,
)
from pricing.meters import Meter
from pricing.money import Currency
from pricing.package import PackagePrice, PackageRounding
from pricing.per_unit import PerUnitPrice
from pricing.price import Price
from pricing.price_tiers import PriceTier, check_tiers
from pricing.volume import VolumePrice

AMOUNT_PLACES = 12  # Stripe: "a decimal value ... with at most 12 decimal places"

_PRICED_KEYS = frozenset(
    {"currency", "billing_scheme", "unit_amount", "unit_amount_decimal"}
    | {"tiers", "tiers_mode", "transform_quantity"}
)
# Stripe Price fields that describe the price but never change what a quantity costs.
_DESCRIPTIVE_KEYS = frozenset(
    {
        "id",
        "object",
        "active",
        "created",
        "livemode",
        "lookup_key",
        "metadata",
        "nickname",
    }
    | {"product", "recurring", "tax_behavior", "type"}
)
_TIER_KEYS = frozenset(
    {
        "up_to",
        "unit_amount",
        "unit_amount_decimal",
        "flat_amount",
        "flat_amount_decimal",
    }
)
_UNBOUNDED = frozenset({"inf", "Infinity", "infinity"})


def parse_price(document: object, field: str = "price") -> Price:
    """The price model a price spec describes; raises `InvalidPrice` naming the bad field."""
    spec = as_object(document, field, InvalidPrice)
    _refuse_unsupported(spec, field)
    currency = as_currency(spec.get("currency"), child(field, "currency"), InvalidPrice)
    scheme = spec.get("billing_scheme") or "per_unit"  # Stripe's default
    if scheme == "per_unit":
        return _per_unit(spec, currency, field)
    if scheme == "tiered":
        return _tiered(spec, currency, field)
    raise InvalidPrice(child(field, "billing_scheme"), 'must be "per_unit" or "tiered"')


def parse_meter_prices(document: object, field: str, error: type[InvalidField]) -> dict[Meter, Price]:
    """A `{meter: price spec}` object, as catalogs and contracts hold; errors are `error`."""
    prices = as_object(document, field, error)
    parsed = {}
    for key, spec in prices.items():
        meter = meter_key(key, child(field, key), error)
        try:
            parsed[meter] = parse_price(spec, child(field, key))
        except InvalidPrice as bad:
            raise error(bad.field, bad.message) from None
    return parsed


def meter_key(key: str, field: str, error: type[InvalidField]) -> Meter:
    try:
        return Meter(key)
    except ValueError:
        raise error(field, f"{key!r} is not a meter (one of {', '.join(Meter)})") from None


def _refuse_unsupported(spec: Mapping[str, object], field: str) -> None:
    for key in ("custom_unit_amount", "currency_options"):
        if spec.get(key) is not None:
            raise InvalidPrice(child(field, key), "is not supported by billing-service")
    known = _PRICED_KEYS | _DESCRIPTIVE_KEYS | {"custom_unit_amount", "currency_options"}
    reject_unknown_keys(spec, known, field, InvalidPrice)


def _per_unit(spec: Mapping[str, object], currency: Currency, field: str) -> Price:
    if spec.get("tiers") is not None or spec.get("tiers_mode") is not None:
        raise InvalidPrice(child(field, "tiers"), 'needs billing_scheme "tiered"')
    unit_amount = _amount(spec, "unit_amount", field, required=True)
    transform = spec.get("transform_quantity")
    if transform is None:
        return PerUnitPrice(currency, unit_amount)
    divide_by, rounding = _transform(transform, child(field, "transform_quantity"))
    return PackagePrice(currency, unit_amount, divide_by, rounding)


def _transform(document: object, field: str) -> tuple[int, PackageRounding]:
    transform = as_object(document, field, InvalidPrice)
    reject_unknown_keys(transform, frozenset({"divide_by", "round"}), field, InvalidPrice)
    divide_by = as_int(transform.get("divide_by"), child(field, "divide_by"), InvalidPrice, minimum=1)
    rounding = transform.get("round")
    if rounding not in ("up", "down"):
        raise InvalidPrice(child(field, "round"), 'must be "up" or "down"')
    return divide_by, PackageRounding(rounding)


def _tiered(spec: Mapping[str, object], currency: Currency, field: str) -> Price:
    if spec.get("transform_quantity") is not None:
        # Stripe: "transform_quantity ... is incompatible with tiered pricing".
        raise InvalidPrice(child(field, "transform_quantity"), "cannot be combined with tiers")
    for key in ("unit_amount", "unit_amount_decimal"):
        if spec.get(key) is not None:
            raise InvalidPrice(child(field, key), "belongs in each tier of a tiered price")
    tiers_field = child(field, "tiers")
    raw_tiers = as_list(spec.get("tiers"), tiers_field, InvalidPrice)
    tiers = tuple(_tier(raw, child(tiers_field, index)) for index, raw in enumerate(raw_tiers))
    check_tiers(tiers, tiers_field)
    mode = spec.get("tiers_mode")
    if mode == "graduated":
        return GraduatedPrice(currency, tiers)
    if mode == "volume":
        return VolumePrice(currency, tiers)
    raise InvalidPrice(child(field, "tiers_mode"), 'must be "graduated" or "volume"')


def _tier(document: object, field: str) -> PriceTier:
    tier = as_object(document, field, InvalidPrice)
    reject_unknown_keys(tier, _TIER_KEYS, field, InvalidPrice)
    unit_amount = _amount(tier, "unit_amount", field, required=False)
    flat_amount = _amount(tier, "flat_amount", field, required=False)
    if all(tier.get(key) is None for key in _TIER_KEYS - {"up_to"}):
        raise InvalidPrice(field, "needs unit_amount_decimal or flat_amount_decimal")
    return PriceTier(_up_to(tier.get("up_to"), child(field, "up_to")), unit_amount, flat_amount)


def _up_to(value: object, field: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and value in _UNBOUNDED):
        return None
    bound = as_decimal(value, field, InvalidPrice)
    if bound <= 0:
        raise InvalidPrice(field, 'must be positive, "inf" or null')
    return bound


def _amount(spec: Mapping[str, object], name: str, field: str, *, required: bool) -> Decimal:
    """`name_decimal` or the integer `name`; a Stripe Price object carries both, equal."""
    whole, decimal = spec.get(name), spec.get(f"{name}_decimal")
    whole_amount = None if whole is None else Decimal(as_int(whole, child(field, name), InvalidPrice))
    decimal_amount = (
        None
        if decimal is None
        else as_decimal(
            decimal,
            child(field, f"{name}_decimal"),
            InvalidPrice,
            max_places=AMOUNT_PLACES,
        )
    )
    if whole_amount is not None and decimal_amount is not None and whole_amount != decimal_amount:
        raise InvalidPrice(child(field, name), f"disagrees with {name}_decimal")
    amount = decimal_amount if decimal_amount is not None else whole_amount
    if amount is not None:
        return amount
    if required:
        raise InvalidPrice(child(field, f"{name}_decimal"), "is required")
    return Decimal(0)
