"""Properties every price model keeps, checked against independent formulas."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pricing.graduated import GraduatedPrice
from pricing.package import PackagePrice, PackageRounding
from pricing.per_unit import PerUnitPrice
from pricing.price import Price
from pricing.price_spec import parse_price
from pricing.price_tiers import PriceTier
from pricing.volume import VolumePrice

from .factories import USD

amounts = st.decimals(min_value=0, max_value=10_000, places=3)
quantities = st.decimals(min_value=0, max_value=100_000, places=4)


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[PriceTier, ...]:
    bounds = sorted(draw(st.sets(st.decimals(min_value="0.01", max_value=50_000, places=2), max_size=5)))
    ups: list[Decimal | None] = [*bounds, None]
    return tuple(PriceTier(up, draw(amounts), draw(amounts)) for up in ups)


def lower_bounds(tiers: tuple[PriceTier, ...]) -> list[Decimal]:
    return [Decimal(0)] + [tier.up_to for tier in tiers[:-1] if tier.up_to is not None]


@given(tier_lists(), quantities)
def test_graduated_equals_the_sum_of_its_tier_slices(tiers: tuple[PriceTier, ...], q: Decimal) -> None:
    expected = Decimal(0)
    for index, (tier, lower) in enumerate(zip(tiers, lower_bounds(tiers), strict=True)):
        upper = q if tier.up_to is None else min(q, tier.up_to)
        slice_units = max(Decimal(0), upper - lower)
        reached = index == 0 or q > lower
        expected += slice_units * tier.unit_amount + (tier.flat_amount if reached else 0)
    assert GraduatedPrice(USD, tiers).charge(q).minor_units == expected


@given(tier_lists(), quantities, quantities)
def test_graduated_never_decreases_with_more_usage(
    tiers: tuple[PriceTier, ...], a: Decimal, b: Decimal
) -> None:
    price = GraduatedPrice(USD, tiers)
    low, high = sorted((a, b))
    assert price.charge(low).minor_units <= price.charge(high).minor_units


@given(tier_lists(), quantities)
def test_volume_prices_every_unit_at_one_tier(tiers: tuple[PriceTier, ...], q: Decimal) -> None:
    # The tier is the one whose range (previous bound, up_to] holds q; the first also holds 0.
    index = next(i for i, t in enumerate(tiers) if t.up_to is None or q <= t.up_to)
    tier = tiers[index]
    assert index == 0 or q > lower_bounds(tiers)[index]
    assert VolumePrice(USD, tiers).charge(q).minor_units == q * tier.unit_amount + tier.flat_amount


@given(amounts, st.integers(min_value=1, max_value=10_000), quantities)
def test_package_rounding_up_never_bills_less_than_usage_needs(unit: Decimal, size: int, q: Decimal) -> None:
    price = PackagePrice(USD, unit, size, PackageRounding.UP)
    packages = price.packages(q)
    assert packages == packages.to_integral_value()
    assert packages * size >= q > (packages - 1) * size or packages == q == 0
    assert price.charge(q).minor_units == packages * unit


@given(amounts, st.integers(min_value=1, max_value=10_000), quantities)
def test_package_rounding_down_bills_whole_packages_only(unit: Decimal, size: int, q: Decimal) -> None:
    packages = PackagePrice(USD, unit, size, PackageRounding.DOWN).packages(q)
    assert packages * size <= q < (packages + 1) * size


def prices() -> st.SearchStrategy[Price]:
    return st.one_of(
        st.builds(PerUnitPrice, st.just(USD), amounts),
        st.builds(
            PackagePrice,
            st.just(USD),
            amounts,
            st.integers(1, 1000),
            st.sampled_from(PackageRounding),
        ),
        st.builds(GraduatedPrice, st.just(USD), tier_lists()),
        st.builds(VolumePrice, st.just(USD), tier_lists()),
    )


@given(prices())
def test_every_price_reads_back_from_its_spec(price: Price) -> None:
    assert parse_price(price.to_spec()) == price
