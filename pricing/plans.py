"""The five service tiers and a plan: the commercial terms of one tier in a catalog version.

A plan prices meters (any meter without a price costs 0 on that tier), and may add a monthly
base fee with a reserved quota per meter (lite), a monthly minimum commitment (enterprise), or
a one-time licence with yearly support (airgapped). `prices_from` borrows another tier's meter
prices, so "lite overage at shared rates" stays true when a new version changes shared rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from pricing.errors import InvalidCatalog, InvalidField
from pricing.json_fields import as_decimal, as_object, child, reject_unknown_keys
from pricing.meters import Meter
from pricing.money import plain
from pricing.price import Price
from pricing.price_spec import AMOUNT_PLACES, meter_key, parse_meter_prices


class Tier(StrEnum):
    ZERO = "zero"
    SHARED = "shared"
    LITE = "lite"
    ENTERPRISE = "enterprise"
    AIRGAPPED = "airgapped"


_TIER_NAMES = frozenset(tier.value for tier in Tier)
_ZERO = Decimal(0)
_AMOUNTS = {  # JSON key -> Plan attribute; all minor units
    "base_fee_monthly_decimal": "base_fee_monthly",
    "minimum_monthly_decimal": "minimum_monthly",
    "licence_fee_decimal": "licence_fee",
    "support_yearly_decimal": "support_yearly",
}
_KEYS = frozenset({"prices", "prices_from", "included_monthly"} | set(_AMOUNTS))


@dataclass(frozen=True)
class Plan:
    prices: Mapping[Meter, Price] = field(default_factory=dict)
    prices_from: Tier | None = None  # use that tier's prices instead of `prices`
    # Reserved quota per month, in the meter's billing unit (CPU-hours for cpu_seconds).
    included: Mapping[Meter, Decimal] = field(default_factory=dict)
    base_fee_monthly: Decimal = _ZERO
    minimum_monthly: Decimal = _ZERO
    # Defaults for a licence that does not negotiate its own fees.
    licence_fee: Decimal = _ZERO
    support_yearly: Decimal = _ZERO

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {}
        if self.prices_from is not None:
            document["prices_from"] = self.prices_from.value
        else:
            document["prices"] = {meter.value: p.to_spec() for meter, p in self.prices.items()}
        if self.included:
            document["included_monthly"] = {m.value: plain(q) for m, q in self.included.items()}
        for key, attribute in _AMOUNTS.items():
            amount: Decimal = getattr(self, attribute)
            if amount:
                document[key] = plain(amount)
        return document

    @classmethod
    def from_json(cls, document: object, field: str) -> Plan:
        plan = as_object(document, field, InvalidCatalog)
        reject_unknown_keys(plan, _KEYS, field, InvalidCatalog)
        if plan.get("prices_from") is not None and plan.get("prices") is not None:
            raise InvalidCatalog(child(field, "prices_from"), "cannot be combined with prices")
        amounts = {
            attribute: as_decimal(
                plan.get(key, 0),
                child(field, key),
                InvalidCatalog,
                max_places=AMOUNT_PLACES,
            )
            for key, attribute in _AMOUNTS.items()
        }
        return cls(
            prices=_prices(plan.get("prices", {}), child(field, "prices")),
            prices_from=_tier(plan.get("prices_from"), child(field, "prices_from")),
            included=_included(plan.get("included_monthly", {}), child(field, "included_monthly")),
            **amounts,
        )


def _prices(document: object, field: str) -> dict[Meter, Price]:
    return parse_meter_prices(document, field, InvalidCatalog)


def _included(document: object, field: str) -> dict[Meter, Decimal]:
    included = as_object(document, field, InvalidCatalog)
    return {
        meter_key(key, child(field, key), InvalidCatalog): as_decimal(
            value, child(field, key), InvalidCatalog
        )
        for key, value in included.items()
    }


def _tier(value: object, field: str) -> Tier | None:
    if value is None:
        return None
    return parse_tier(value, field, InvalidCatalog)


def parse_tier(value: object, field: str, error: type[InvalidField]) -> Tier:
    if isinstance(value, str) and value in _TIER_NAMES:
        return Tier(value)
    raise error(field, f"must be one of {', '.join(Tier)}")
