import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.catalog import Catalog, CatalogVersion, load_default_catalog
from pricing.errors import InvalidField, InvalidUsage
from pricing.meters import METERS, Meter
from pricing.periods import Period
from pricing.plans import Tier
from pricing.rating import rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

from .factories import MARCH_2025, USD, at, rate, totals, usage

SHARED = TenantPricing("t", Tier.SHARED)


def test_rows_for_the_same_hour_add_up() -> None:
    rating = rate(SHARED, usage(cpu_seconds=1800), usage(cpu_seconds=1800))
    assert rating.lines[0].quantity == 1


def test_usage_outside_the_period_is_refused() -> None:
    with pytest.raises(InvalidUsage) as error:
        rate(SHARED, usage(day=1), HourlyUsage(at(1, month=4)))
    assert error.value.field == "usage[1].hour"


@pytest.mark.parametrize(
    ("hour", "quantities", "field"),
    [
        (at(1).replace(minute=30), {}, "hour"),
        (at(1).replace(tzinfo=None), {}, "hour"),
        (at(1), {"executions": Decimal(-1)}, "executions"),
        (at(1), {"network_gb": 1.5}, "network_gb"),
    ],
)
def test_bad_usage_rows_name_the_field(hour: object, quantities: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidUsage) as error:
        HourlyUsage(hour, **quantities)  # type: ignore[arg-type]
    assert error.value.field == field


def test_usage_rows_read_back_from_the_api_row_shape() -> None:
    row = usage(cpu_seconds="7200.5", network_gb="0.25")
    assert HourlyUsage.from_json(json.loads(json.dumps(row.to_json()))) == row


def _graduated_catalog_changing_on_the_15th() -> Catalog:
    """The default catalog with zero-tier executions priced in graduated tiers (10 units at 10,
    then 1) from February, and the first tier at 20 from March 15."""
    catalog = load_default_catalog()
    document = catalog.version_at(at(1)).to_json()
    graduated = {
        "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": 10, "unit_amount": 10}, {"up_to": "inf", "unit_amount": 1}],
    }  # fmt: skip
    document["plans"]["zero"]["prices"]["executions"] = graduated  # type: ignore[index]
    first = CatalogVersion.from_json(
        document | {"version": "g1", "effective_from": "2025-02-01T00:00:00Z"}, "v", USD
    )
    graduated["tiers"][0]["unit_amount"] = 20  # type: ignore[index]
    second = CatalogVersion.from_json(
        document | {"version": "g2", "effective_from": "2025-03-15T00:00:00Z"}, "v", USD
    )
    return catalog.with_version(first).with_version(second)


def test_graduated_tiers_count_over_the_period_across_a_price_change() -> None:
    catalog = _graduated_catalog_changing_on_the_15th()
    rows = [usage(day=10, executions=8), usage(day=20, executions=8)]
    rating = rate_period(rows, TenantPricing("t", Tier.ZERO), catalog, MARCH_2025)
    # Before the change: 8 units in tier 1 at 10. After: 2 more of tier 1 (now 20), 6 in tier 2.
    assert [line.amount.minor_units for line in rating.lines] == [80, 46]


@given(st.dictionaries(st.integers(0, 30 * 24 - 1), st.integers(0, 5), max_size=60))
def test_hours_charged_together_cost_what_each_hour_charged_alone_would(used: dict[int, int]) -> None:
    """Rating charges the hours under one price at once; hour by hour (the definition in
    usage_lines) must give the same amounts, whichever side of the price change the hours are."""
    catalog = _graduated_catalog_changing_on_the_15th()
    hours = sorted((at(1) + timedelta(hours=h), count) for h, count in used.items())
    rows = [HourlyUsage(hour, executions=Decimal(count)) for hour, count in hours]
    rating = rate_period(rows, TenantPricing("t", Tier.ZERO), catalog, MARCH_2025)

    charged: dict[str, Decimal] = {}
    total = Decimal(0)
    for hour, count in hours:
        if count:
            version = catalog.version_at(hour)
            price = version.prices(Tier.ZERO)[Meter.EXECUTIONS]
            before, total = total, total + count
            charged[version.version] = charged.get(version.version, Decimal(0)) + (
                price.minor_amount(total) - price.minor_amount(before)
            )
    assert [line.amount.minor_units for line in rating.lines] == list(charged.values())


def test_a_period_with_no_usage_has_no_usage_lines() -> None:
    assert totals(rate(TenantPricing("t", Tier.ZERO))) == []
    assert totals(rate(TenantPricing("t", Tier.LITE))) == [("base_fee", "99.00")]


def test_the_first_tiers_flat_amount_is_due_without_usage() -> None:
    catalog = load_default_catalog()
    document = catalog.version_at(at(1)).to_json()
    document["plans"]["zero"]["prices"]["executions"] = {  # type: ignore[index]
        "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "volume",
        "tiers": [{"up_to": 1000, "unit_amount": 0, "flat_amount": 500}, {"up_to": "inf", "unit_amount": 1}],
    }  # fmt: skip
    catalog = catalog.with_version(
        CatalogVersion.from_json(
            document | {"version": "f", "effective_from": "2025-02-01T00:00:00Z"},
            "v",
            USD,
        )
    )
    rating = rate_period([], TenantPricing("t", Tier.ZERO), catalog, MARCH_2025)
    assert totals(rating) == [("usage", "5.00")]


def month_of_usage() -> list[HourlyUsage]:
    hours = int((MARCH_2025.end - MARCH_2025.start) / timedelta(hours=1))
    return [
        HourlyUsage(
            MARCH_2025.start + timedelta(hours=h),
            cpu_seconds=Decimal(h * 37 % 3600),
            memory_gb_hours=Decimal(h % 17) / 3,
            network_gb=Decimal(h % 7) / 9,
            executions=Decimal(h * 13 % 101),
        )
        for h in range(hours)
    ]


def test_rating_is_deterministic_whatever_the_callers_decimal_context() -> None:
    rows = month_of_usage()
    lite = TenantPricing("t", Tier.LITE)
    expected = rate_period(rows, lite, load_default_catalog(), MARCH_2025)
    with localcontext() as context:
        context.prec = 6
        assert rate_period(rows, lite, load_default_catalog(), MARCH_2025) == expected
    script = (
        "import json, sys; from tests.pricing.test_rating import *; "
        "print(json.dumps(rate_period(month_of_usage(), TenantPricing('t', Tier.LITE), "
        "load_default_catalog(), MARCH_2025).to_json()))"
    )
    other_process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(other_process.stdout) == json.loads(json.dumps(expected.to_json()))


def test_lines_serialise_in_major_units() -> None:
    (line,) = rate(TenantPricing("t", Tier.ZERO), usage(executions=12345)).lines
    document = line.to_json()
    assert (
        document["unit_price"],
        document["amount_unrounded"],
        document["amount"],
    ) == ("0.001", "12.345", "12.35")
    assert document["period"] == {
        "start": "2025-03-05T10:00:00Z",
        "end": "2025-03-05T11:00:00Z",
    }


def test_a_period_must_end_after_it_starts() -> None:
    with pytest.raises(InvalidField) as error:
        Period(at(2), at(1))
    assert error.value.field == "period_end"


def test_an_hour_as_the_store_sums_it_is_the_hour_the_checked_constructor_makes():
    """`HourlyUsage.stored` skips the checks (the store's sums were checked on the way in), and
    gives what the checking constructor gives: rating cannot tell them apart."""
    quantities = (Decimal("3600.5"), Decimal("2.25"), Decimal(0), Decimal("0.000001"), Decimal(7))
    stored = HourlyUsage.stored(at(3), quantities)
    checked = HourlyUsage(at(3), *quantities)
    assert stored == checked
    assert [stored.quantity(meter) for meter in METERS] == list(quantities)
    with pytest.raises(ValueError):
        HourlyUsage.stored(at(3), quantities[:4])  # all five meters, in METERS order
