from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pricing.catalog import load_default_catalog
from pricing.meters import Meter
from pricing.plans import Tier
from pricing.rating import rate_period
from pricing.spot import SpotSeries
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

from .factories import MARCH_2025, USD, at

START = at(1)
hourly = st.lists(
    st.tuples(
        st.decimals(min_value=0, max_value=100_000, places=3),  # CPU-seconds used that hour
        st.decimals(min_value=0, max_value=50, places=6),  # spot cents per CPU-hour that hour
    ),
    min_size=1,
    max_size=72,
)


@given(hourly)
def test_hourly_spot_charges_add_up_to_the_integral_of_usage_times_price(
    hours: list[tuple[Decimal, Decimal]],
) -> None:
    stamps = [START + timedelta(hours=i) for i in range(len(hours))]
    series = SpotSeries(Meter.CPU_SECONDS, USD, {t: p for t, (_, p) in zip(stamps, hours, strict=True)})
    rows = [HourlyUsage(t, cpu_seconds=q) for t, (q, _) in zip(stamps, hours, strict=True)]
    rating = rate_period(
        rows, TenantPricing("t", Tier.SHARED), load_default_catalog(), MARCH_2025,
        spot={Meter.CPU_SECONDS: series},
    )  # fmt: skip
    integral = sum((q * p for q, p in hours), Decimal(0)) / 3600  # CPU-seconds x cents per CPU-hour
    spot_amount = sum(
        (line.amount.minor_units for line in rating.lines if "spot" in line.description),
        Decimal(0),
    )
    assert abs(spot_amount - integral) < Decimal("1e-20")
    assert sum((line.rounded.minor_units for line in rating.lines), Decimal(0)) == spot_amount.quantize(
        Decimal(1), rounding="ROUND_HALF_UP"
    )


def test_hours_without_a_spot_price_fall_back_to_the_catalog() -> None:
    series = SpotSeries(
        Meter.CPU_SECONDS,
        USD,
        {at(2, 0): Decimal(2), at(2, 1): Decimal(3)},
        name="spot",
    )
    rows = [HourlyUsage(at(2, h), cpu_seconds=Decimal(36000)) for h in range(3)]  # 10 CPU-hours each
    rating = rate_period(
        rows, TenantPricing("t", Tier.SHARED), load_default_catalog(), MARCH_2025,
        spot={Meter.CPU_SECONDS: series},
    )  # fmt: skip
    assert [(line.description.split(", ")[1], int(line.amount.minor_units)) for line in rating.lines] == [
        ("spot price", 50),  # 10 x 2 + 10 x 3 cents
        ("shared tier", 50),  # 10 x 5 cents
    ]
    assert rating.lines[0].unit_price == Decimal("2.5")  # the average over the line


def test_a_spot_series_reads_back_from_its_json() -> None:
    series = SpotSeries(
        Meter.NETWORK_GB,
        USD,
        {at(3, 4): Decimal("1.25"), at(3, 5): Decimal(2)},
        "egress spot",
    )
    assert SpotSeries.from_json(series.to_json()) == series
