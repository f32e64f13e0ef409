import json
from decimal import Decimal

import pytest

from pricing.catalog import load_default_catalog
from pricing.contracts import Contract
from pricing.errors import CurrencyMismatch, InvalidSettings
from pricing.meters import Meter
from pricing.per_unit import PerUnitPrice
from pricing.periods import Period
from pricing.plans import Tier
from pricing.price_tiers import PriceTier
from pricing.rating import rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.volume import VolumePrice

from .factories import MARCH_2025, USD, at, totals, usage


def enterprise(*contracts: Contract) -> TenantPricing:
    return TenantPricing("acme", Tier.ENTERPRISE, contracts)


def test_negotiated_volume_discount_tiers_and_a_custom_minimum() -> None:
    cheaper_in_bulk = VolumePrice(USD, (PriceTier(Decimal(10_000), Decimal(5)), PriceTier(None, Decimal(3))))
    contract = Contract(
        "acme-bulk", at(1, month=1), rates={Meter.CPU_SECONDS: cheaper_in_bulk},
        minimum_monthly=Decimal(50_000),  # $500
    )  # fmt: skip
    small = rate_period(
        [usage(cpu_seconds=9_000 * 3600)],
        enterprise(contract),
        load_default_catalog(),
        MARCH_2025,
    )
    bulk = rate_period(
        [usage(cpu_seconds=20_000 * 3600)],
        enterprise(contract),
        load_default_catalog(),
        MARCH_2025,
    )
    assert totals(small) == [("usage", "450.00"), ("minimum_true_up", "50.00")]
    assert totals(bulk) == [("usage", "600.00")]  # every CPU-hour at 3 cents


def test_a_contract_ending_mid_month_hands_over_to_the_catalog() -> None:
    contract = Contract(
        "acme-q1", at(1, month=1), effective_to=at(16),
        rates={Meter.CPU_SECONDS: PerUnitPrice(USD, Decimal(2))}, minimum_monthly=Decimal(0),
    )  # fmt: skip
    rows = [
        usage(day=10, cpu_seconds=3600 * 100),
        usage(day=20, cpu_seconds=3600 * 100),
    ]
    rating = rate_period(rows, enterprise(contract), load_default_catalog(), MARCH_2025)
    # 100 CPU-hours at $0.02, 100 at the list $0.05; no minimum to 16 March, then the
    # catalog's $5,000 for the remaining 16 of 31 days = $2,580.65.
    assert totals(rating) == [
        ("usage", "2.00"),
        ("usage", "5.00"),
        ("minimum_true_up", "2573.65"),
    ]
    assert rating.subtotal.format_major() == "2580.65"


def test_overlapping_contracts_are_refused() -> None:
    first = Contract("a", at(1), effective_to=at(20))
    second = Contract("b", at(10))
    with pytest.raises(InvalidSettings, match="overlap"):
        enterprise(first, second)


def test_only_enterprise_tenants_have_contracts() -> None:
    with pytest.raises(InvalidSettings) as error:
        TenantPricing("t", Tier.SHARED, (Contract("a", at(1)),))
    assert error.value.field == "contracts"


def test_contract_rates_must_be_in_the_catalog_currency() -> None:
    euro = Contract("eu", at(1), rates={Meter.CPU_SECONDS: PerUnitPrice(USD.of("eur"), Decimal(4))})
    with pytest.raises(CurrencyMismatch):
        rate_period([], enterprise(euro), load_default_catalog(), MARCH_2025)


def test_tenant_settings_read_back_from_json() -> None:
    contract = Contract(
        "acme-2025", at(1, month=1), effective_to=at(1, month=1, year=2026),
        rates={Meter.CPU_SECONDS: PerUnitPrice(USD, Decimal(4))},
        discount_percent=Decimal("12.5"), minimum_monthly=Decimal(750_000),
    )  # fmt: skip
    settings = enterprise(contract)
    text = json.dumps(settings.to_json())
    assert TenantPricing.from_json(json.loads(text)) == settings


def test_an_unknown_tier_is_refused() -> None:
    with pytest.raises(InvalidSettings) as error:
        TenantPricing.from_json({"tenant_id": "acme", "tier": "gold"})
    assert error.value.field == "tier"


@pytest.mark.parametrize(
    ("contract", "field"),
    [
        ({"discount_percent": "101"}, "discount_percent"),
        (
            {"rates": {"cpu_seconds": {"currency": "usd"}}},
            "rates.cpu_seconds.unit_amount_decimal",
        ),
        ({"rates": {"gpu_seconds": {}}}, "rates.gpu_seconds"),
        ({"effective_to": "2024-01-01T00:00:00Z"}, "effective_to"),
        ({"minimum_monthly_decimal": 5000.0}, "minimum_monthly_decimal"),
    ],
)
def test_bad_contracts_name_the_failing_field(contract: dict[str, object], field: str) -> None:
    document = {"contract_id": "a", "effective_from": "2025-01-01T00:00:00Z"} | contract
    with pytest.raises(InvalidSettings) as error:
        TenantPricing.from_json({"tenant_id": "acme", "tier": "enterprise", "contracts": [document]})
    assert error.value.field == f"contracts[0].{field}"


def test_the_minimum_for_a_part_month_is_prorated() -> None:
    half = Period(at(1, month=4), at(16, month=4))  # 15 of April's 30 days
    rating = rate_period([], enterprise(), load_default_catalog(), half)
    assert totals(rating) == [("minimum_true_up", "2500.00")]
