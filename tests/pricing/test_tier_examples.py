"""Worked examples from the pricing sheet (design.md §6), one per tier, totals to the cent."""

from decimal import Decimal

from pricing.airgapped import Licence
from pricing.contracts import Contract
from pricing.lines import LineKind
from pricing.meters import Meter
from pricing.per_unit import PerUnitPrice
from pricing.periods import Period
from pricing.plans import Tier
from pricing.tenant_pricing import TenantPricing

from .factories import USD, at, rate, totals, usage

CPU_HOUR = 3600  # cpu_seconds


def test_zero_12345_executions_and_3_5_gb_egress() -> None:
    rating = rate(TenantPricing("t", Tier.ZERO), usage(executions=12345, network_gb="3.5"))
    # $0.10 x 3.5 GB = $0.35; $0.001 x 12,345 = $12.345, rounded half up to $12.35.
    assert totals(rating) == [("usage", "0.35"), ("usage", "12.35")]
    assert rating.lines[1].amount.minor_units == Decimal("1234.5")
    assert rating.subtotal.format_major() == "12.70"


def test_shared_7200_cpu_seconds_and_100_gb_hours() -> None:
    rating = rate(TenantPricing("t", Tier.SHARED), usage(cpu_seconds=7200, memory_gb_hours=100))
    cpu = rating.lines[0]
    # 2 CPU-hours at 5 cents.
    assert (cpu.quantity, cpu.unit, cpu.unit_price) == (
        Decimal(2),
        "CPU-hour",
        Decimal(5),
    )
    assert totals(rating) == [("usage", "0.10"), ("usage", "1.00")]
    assert rating.subtotal.format_major() == "1.10"


def test_shared_prices_only_cpu_and_memory() -> None:
    rating = rate(TenantPricing("t", Tier.SHARED), usage(storage_gb_hours=500, executions=10**6))
    assert rating.lines == ()


def test_lite_under_its_quota_pays_the_base_fee_only() -> None:
    lite = TenantPricing("t", Tier.LITE)
    rating = rate(lite, usage(cpu_seconds=500 * CPU_HOUR), usage(day=6, memory_gb_hours=2000))
    assert totals(rating) == [
        ("usage", "0.00"),
        ("usage", "0.00"),
        ("base_fee", "99.00"),
    ]
    assert [line.included_quantity for line in rating.lines[:2]] == [500, 2000]
    assert rating.subtotal.format_major() == "99.00"


def test_lite_over_its_quota_pays_overage_at_shared_rates() -> None:
    lite = TenantPricing("t", Tier.LITE)
    rating = rate(lite, usage(cpu_seconds=1000 * CPU_HOUR, memory_gb_hours=3000))
    # Quota 720 CPU-hours and 2,880 GB-hours: 280 x $0.05 + 120 x $0.01 + $99.
    assert totals(rating) == [
        ("usage", "14.00"),
        ("usage", "1.20"),
        ("base_fee", "99.00"),
    ]
    assert rating.lines[0].unit_price == 5  # per billable CPU-hour
    assert rating.subtotal.format_major() == "114.20"


def test_lite_quota_is_used_up_hour_by_hour() -> None:
    hours = [usage(day=d, cpu_seconds=100 * CPU_HOUR) for d in range(1, 11)]  # 1,000 CPU-hours
    rating = rate(TenantPricing("t", Tier.LITE), *hours)
    assert rating.lines[0].included_quantity == 720
    assert rating.subtotal.format_major() == "113.00"  # 280 x $0.05 + $99


def test_lite_for_part_of_a_month_prorates_fee_and_quota() -> None:
    from_10th = Period(at(10), at(1, month=4))  # 22 of March's 31 days
    rating = rate(
        TenantPricing("t", Tier.LITE),
        usage(day=12, cpu_seconds=600 * CPU_HOUR),
        period=from_10th,
    )
    # Quota 720 x 22/31 = 510.97 CPU-hours; 89.03 over at $0.05 = $4.45; fee $99 x 22/31 = $70.26.
    assert totals(rating) == [("usage", "4.45"), ("base_fee", "70.26")]


ACME = Contract(
    "acme-2025",
    effective_from=at(1, month=1),
    rates={Meter.CPU_SECONDS: PerUnitPrice(USD, Decimal(4))},  # $0.04 a CPU-hour, negotiated
    discount_percent=Decimal(10),
)


def test_enterprise_below_the_minimum_is_trued_up_to_5000() -> None:
    acme = TenantPricing("acme", Tier.ENTERPRISE, (ACME,))
    rating = rate(acme, usage(cpu_seconds=10_000 * CPU_HOUR, memory_gb_hours=1000))
    # $400 CPU at the contract rate + $10 memory at the list rate - 10% = $369; true-up $4,631.
    assert totals(rating) == [
        ("usage", "400.00"),
        ("usage", "10.00"),
        ("discount", "-41.00"),
        ("minimum_true_up", "4631.00"),
    ]
    assert rating.subtotal.format_major() == "5000.00"


def test_enterprise_above_the_minimum_has_no_true_up() -> None:
    acme = TenantPricing("acme", Tier.ENTERPRISE, (ACME,))
    rating = rate(acme, usage(cpu_seconds=200_000 * CPU_HOUR))
    assert totals(rating) == [("usage", "8000.00"), ("discount", "-800.00")]
    assert rating.subtotal.format_major() == "7200.00"


def test_enterprise_without_a_contract_pays_list_prices_and_the_default_minimum() -> None:
    rating = rate(TenantPricing("e", Tier.ENTERPRISE), usage(cpu_seconds=7200))
    assert totals(rating) == [("usage", "0.10"), ("minimum_true_up", "4999.90")]


def test_airgapped_licence_plus_prorated_support_in_the_first_month() -> None:
    licence = Licence("lic-1", starts=at(15))
    rating = rate(TenantPricing("gov", Tier.AIRGAPPED, licence=licence), usage(cpu_seconds=10**9))
    # $50,000 licence; support 15 March - 31 December is 292/365 of $10,000 = $8,000.
    assert totals(rating) == [("licence", "50000.00"), ("support", "8000.00")]
    assert rating.lines[1].quantity == Decimal("0.8")
    assert rating.subtotal.format_major() == "58000.00"


def test_airgapped_renewal_month_bills_a_full_support_year() -> None:
    licence = Licence("lic-1", starts=at(15))
    airgapped = TenantPricing("gov", Tier.AIRGAPPED, licence=licence)
    assert totals(rate(airgapped, period=Period.calendar_month(2026, 1))) == [("support", "10000.00")]
    assert totals(rate(airgapped, period=Period.calendar_month(2026, 2))) == []


def test_every_line_kind_rounds_half_up_once() -> None:
    rating = rate(TenantPricing("t", Tier.ZERO), usage(executions=5))  # 0.5 cents
    (line,) = rating.lines
    assert line.kind is LineKind.USAGE
    assert (line.amount.minor_units, line.rounded.minor_units) == (
        Decimal("0.5"),
        Decimal(1),
    )
