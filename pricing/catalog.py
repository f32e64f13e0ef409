"""The catalog: the tier rules as versioned data with effective dates, not code (design.md §6).

A version is in force from its `effective_from` until the next version's, so a price change on
the 15th rates every hour before it at the old prices and every hour from it at the new ones.
`default_catalog.json` beside this module is the pricing sheet; `Catalog.with_version` adds a
price change without touching the versions already billed.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib import resources

from pricing.billing_units import BillingUnit
from pricing.errors import InvalidCatalog, NoPriceInForce
from pricing.json_fields import (
    as_currency,
    as_instant,
    as_list,
    as_object,
    as_string,
    child,
    instant_text,
    reject_unknown_keys,
)
from pricing.meters import METERS, Meter
from pricing.money import Currency
from pricing.periods import Period
from pricing.plans import Plan, Tier
from pricing.price import Price

_CATALOG_KEYS = frozenset({"catalog", "currency", "units", "versions"})
_VERSION_KEYS = frozenset({"version", "effective_from", "plans"})


@dataclass(frozen=True)
class CatalogVersion:
    version: str
    effective_from: datetime
    plans: Mapping[Tier, Plan]

    def plan(self, tier: Tier) -> Plan:
        return self.plans[tier]

    def prices(self, tier: Tier) -> Mapping[Meter, Price]:
        plan = self.plans[tier]
        return plan.prices if plan.prices_from is None else self.plans[plan.prices_from].prices

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "effective_from": instant_text(self.effective_from),
            "plans": {tier.value: plan.to_json() for tier, plan in self.plans.items()},
        }

    @classmethod
    def from_json(cls, document: object, field: str, currency: Currency) -> CatalogVersion:
        version = as_object(document, field, InvalidCatalog)
        reject_unknown_keys(version, _VERSION_KEYS, field, InvalidCatalog)
        plans_field = child(field, "plans")
        plans = as_object(version.get("plans"), plans_field, InvalidCatalog)
        result = cls(
            version=as_string(version.get("version"), child(field, "version"), InvalidCatalog),
            effective_from=as_instant(
                version.get("effective_from"),
                child(field, "effective_from"),
                InvalidCatalog,
            ),
            plans={tier: _plan(plans, tier, plans_field) for tier in Tier},
        )
        reject_unknown_keys(plans, frozenset(Tier), plans_field, InvalidCatalog)
        result._check(plans_field, currency)
        return result

    def _check(self, field: str, currency: Currency) -> None:
        for tier, plan in self.plans.items():
            if plan.prices_from is not None and self.plans[plan.prices_from].prices_from:
                raise InvalidCatalog(
                    child(child(field, tier), "prices_from"),
                    "must name a tier with its own prices",
                )
            for meter, price in plan.prices.items():
                if price.currency != currency:
                    where = child(child(child(field, tier), "prices"), meter)
                    raise InvalidCatalog(child(where, "currency"), f"must be the catalog's {currency}")


def _plan(plans: Mapping[str, object], tier: Tier, field: str) -> Plan:
    if tier.value not in plans:
        raise InvalidCatalog(child(field, tier), "is missing: every version prices all five tiers")
    return Plan.from_json(plans[tier.value], child(field, tier))


@dataclass(frozen=True)
class Catalog:
    name: str
    currency: Currency
    units: Mapping[Meter, BillingUnit]
    versions: tuple[CatalogVersion, ...]  # ordered by effective_from

    def version_at(self, instant: datetime) -> CatalogVersion:
        starts = [version.effective_from for version in self.versions]
        index = bisect.bisect_right(starts, instant) - 1
        if index < 0:
            raise NoPriceInForce(f"catalog {self.name} has no version in force at {instant_text(instant)}")
        return self.versions[index]

    def versions_within(self, period: Period) -> list[tuple[Period, CatalogVersion]]:
        """The parts of `period` each version is in force for, in order."""
        parts = period.split_at(version.effective_from for version in self.versions)
        return [(part, self.version_at(part.start)) for part in parts]

    def with_version(self, version: CatalogVersion) -> Catalog:
        """This catalog plus a new version; one taking effect at an existing instant is refused."""
        if any(v.effective_from == version.effective_from for v in self.versions):
            raise InvalidCatalog("effective_from", "another version takes effect at that instant")
        if any(v.version == version.version for v in self.versions):
            raise InvalidCatalog("version", f"version {version.version!r} already exists")
        version._check("plans", self.currency)
        versions = sorted((*self.versions, version), key=lambda v: v.effective_from)
        return Catalog(self.name, self.currency, self.units, tuple(versions))

    def to_json(self) -> dict[str, object]:
        return {
            "catalog": self.name,
            "currency": self.currency.code,
            "units": {meter.value: unit.to_json() for meter, unit in self.units.items()},
            "versions": [version.to_json() for version in self.versions],
        }

    @classmethod
    def from_json(cls, document: object) -> Catalog:
        catalog = as_object(document, "", InvalidCatalog)
        reject_unknown_keys(catalog, _CATALOG_KEYS, "", InvalidCatalog)
        currency = as_currency(catalog.get("currency"), "currency", InvalidCatalog)
        units = as_object(catalog.get("units"), "units", InvalidCatalog)
        reject_unknown_keys(units, frozenset(METERS), "units", InvalidCatalog)
        versions = as_list(catalog.get("versions"), "versions", InvalidCatalog)
        result = cls(
            name=as_string(catalog.get("catalog"), "catalog", InvalidCatalog),
            currency=currency,
            units={m: BillingUnit.from_json(units.get(m.value), child("units", m)) for m in METERS},
            versions=(),
        )
        for index, raw in enumerate(versions):
            version = CatalogVersion.from_json(raw, child("versions", index), currency)
            try:
                result = result.with_version(version)
            except InvalidCatalog as error:
                raise error.under(child("versions", index)) from None
        return result


@cache
def load_default_catalog() -> Catalog:
    """The pricing sheet of design.md §6, from `pricing/default_catalog.json`."""
    text = resources.files("pricing").joinpath("default_catalog.json").read_text("utf-8")
    return Catalog.from_json(json.loads(text, parse_float=Decimal))
