import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from pricing.catalog import Catalog, CatalogVersion, load_default_catalog
from pricing.errors import InvalidCatalog, NoPriceInForce
from pricing.meters import METERS, Meter
from pricing.per_unit import PerUnitPrice
from pricing.plans import Tier
from pricing.rating import rate_period
from pricing.tenant_pricing import TenantPricing

from .factories import MARCH_2025, USD, at, totals, usage


def default_document() -> dict[str, Any]:
    document: dict[str, Any] = load_default_catalog().to_json()
    return copy.deepcopy(document)


def test_the_default_catalog_is_the_pricing_sheet() -> None:
    version = load_default_catalog().version_at(at(1))
    assert version.prices(Tier.ZERO) == {
        Meter.EXECUTIONS: PerUnitPrice(USD, Decimal("0.1")),
        Meter.NETWORK_GB: PerUnitPrice(USD, Decimal(10)),
    }
    assert version.prices(Tier.SHARED) == {
        Meter.CPU_SECONDS: PerUnitPrice(USD, Decimal(5)),
        Meter.MEMORY_GB_HOURS: PerUnitPrice(USD, Decimal(1)),
    }
    lite = version.plan(Tier.LITE)
    assert version.prices(Tier.LITE) == version.prices(Tier.SHARED)
    assert lite.base_fee_monthly == Decimal(9900)
    assert lite.included == {
        Meter.CPU_SECONDS: Decimal(720),
        Meter.MEMORY_GB_HOURS: Decimal(2880),
    }
    assert version.plan(Tier.ENTERPRISE).minimum_monthly == 500_000
    airgapped = version.plan(Tier.AIRGAPPED)
    assert (airgapped.licence_fee, airgapped.support_yearly) == (
        Decimal(5_000_000),
        Decimal(1_000_000),
    )
    assert version.prices(Tier.AIRGAPPED) == {}


def test_meters_convert_to_the_units_the_sheet_prices() -> None:
    units = load_default_catalog().units
    assert set(units) == set(METERS)
    assert units[Meter.CPU_SECONDS].from_meter(Decimal(5400)) == Decimal("1.5")
    assert units[Meter.MEMORY_GB_HOURS].from_meter(Decimal(7)) == 7


def test_a_catalog_reads_back_from_its_json() -> None:
    catalog = load_default_catalog()
    text = json.dumps(catalog.to_json())
    assert Catalog.from_json(json.loads(text, parse_float=Decimal)) == catalog


def with_shared_cpu_price_from_15_march(cents: str) -> Catalog:
    catalog = load_default_catalog()
    document = catalog.version_at(at(1)).to_json()
    document["version"] = "2025-03-15"
    document["effective_from"] = "2025-03-15T00:00:00Z"
    document["plans"]["shared"]["prices"]["cpu_seconds"]["unit_amount_decimal"] = cents  # type: ignore[index]
    return catalog.with_version(CatalogVersion.from_json(document, "version", USD))


def test_a_price_change_on_the_15th_rates_each_hour_at_the_price_then() -> None:
    catalog = with_shared_cpu_price_from_15_march("4")
    rows = [usage(day=d, hour=h, cpu_seconds=3600) for d in range(1, 32) for h in (0, 23)]
    rating = rate_period(rows, TenantPricing("t", Tier.SHARED), catalog, MARCH_2025)
    # 28 CPU-hours before the 15th at $0.05, 34 from it at $0.04.
    assert totals(rating) == [("usage", "1.40"), ("usage", "1.36")]
    before, after = rating.lines
    assert (before.period.start, before.period.end) == (at(1), at(15))
    assert (after.period.start, after.period.end) == (at(15), at(1, month=4))
    assert "catalog 2025-03-15" in after.description


def test_the_last_hour_before_a_change_keeps_the_old_price() -> None:
    catalog = with_shared_cpu_price_from_15_march("4")
    rows = [
        usage(day=14, hour=23, cpu_seconds=3600),
        usage(day=15, hour=0, cpu_seconds=3600),
    ]
    rating = rate_period(rows, TenantPricing("t", Tier.SHARED), catalog, MARCH_2025)
    assert [line.amount.minor_units for line in rating.lines] == [5, 4]


def test_a_new_version_leaves_lite_overage_at_the_new_shared_rate() -> None:
    catalog = with_shared_cpu_price_from_15_march("6")
    rows = [usage(day=20, cpu_seconds=800 * 3600)]
    rating = rate_period(rows, TenantPricing("t", Tier.LITE), catalog, MARCH_2025)
    assert totals(rating)[0] == ("usage", "4.80")  # 80 over the quota at $0.06


def test_no_version_in_force_before_the_first() -> None:
    with pytest.raises(NoPriceInForce):
        load_default_catalog().version_at(at(1, year=2023))


def test_versions_take_effect_at_distinct_instants() -> None:
    catalog = load_default_catalog()
    again = CatalogVersion.from_json(catalog.versions[0].to_json() | {"version": "x"}, "v", USD)
    with pytest.raises(InvalidCatalog, match="effective_from"):
        catalog.with_version(again)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("currency",), "xyz", "currency"),
        (("units", "cpu_seconds", "divide_by"), 0, "units.cpu_seconds.divide_by"),
        (("versions", 0, "plans", "lite", "prices_from"), "gold", "versions[0].plans.lite.prices_from"),
        (("versions", 0, "plans", "enterprise", "prices_from"), "lite", "versions[0].plans.enterprise.prices_from"),
        (("versions", 0, "plans", "zero", "prices", "cpus"), {}, "versions[0].plans.zero.prices.cpus"),
        (
            ("versions", 0, "plans", "zero", "prices", "executions", "currency"),
            "eur",
            "versions[0].plans.zero.prices.executions.currency",
        ),
        (
            ("versions", 0, "plans", "zero", "prices", "executions", "unit_amount_decimal"),
            "x",
            "versions[0].plans.zero.prices.executions.unit_amount_decimal",
        ),
        (("versions", 0, "plans", "lite", "included_monthly", "cpu_seconds"), "-1", "versions[0].plans.lite.included_monthly.cpu_seconds"),
        (("versions", 0, "effective_from"), "2025-01-01", "versions[0].effective_from"),
    ],
)  # fmt: skip
def test_bad_catalogs_name_the_failing_field(path: tuple[str | int, ...], value: object, field: str) -> None:
    document = default_document()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidCatalog) as error:
        Catalog.from_json(document)
    assert error.value.field == field


def test_every_version_prices_all_five_tiers() -> None:
    document = default_document()
    del document["versions"][0]["plans"]["airgapped"]
    with pytest.raises(InvalidCatalog, match=r"versions\[0\]\.plans\.airgapped: is missing"):
        Catalog.from_json(document)
