"""Stripe's documented pricing examples, priced through our price specs.

Sources: docs.stripe.com/subscriptions/pricing-models/tiered-pricing (Typographic's fonts),
/billing/subscriptions/usage-based/transform-quantities (car rental) and the older quantity
transformation guide ($10 per 5 users), and the "flat fee and overages" use case.
"""

from collections.abc import Mapping
from decimal import Decimal

import pytest

from pricing.price_spec import parse_price

FONT_TIERS = [
    {"up_to": 5, "unit_amount": 700},
    {"up_to": 10, "unit_amount": 650},
    {"up_to": "inf", "unit_amount": 600},
]


def total(spec: Mapping[str, object], quantity: int | str) -> str:
    return parse_price(spec).charge(Decimal(quantity)).format_major()


@pytest.mark.parametrize(
    ("fonts", "usd"),
    [(1, "7.00"), (5, "35.00"), (6, "39.00"), (20, "120.00"), (25, "150.00")],
)
def test_fonts_volume_based(fonts: int, usd: str) -> None:
    spec = {
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "volume",
        "tiers": FONT_TIERS,
    }
    assert total(spec, fonts) == usd


@pytest.mark.parametrize(
    ("fonts", "usd"),
    [(1, "7.00"), (5, "35.00"), (6, "41.50"), (20, "127.50"), (25, "157.50")],
)
def test_fonts_graduated(fonts: int, usd: str) -> None:
    spec = {
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers_mode": "graduated",
        "tiers": FONT_TIERS,
    }
    assert total(spec, fonts) == usd


@pytest.mark.parametrize(
    ("users", "usd"),
    [(1, "10.00"), (3, "10.00"), (5, "10.00"), (6, "20.00"), (7, "20.00")],
)
def test_ten_dollars_per_five_users_rounding_up(users: int, usd: str) -> None:
    spec = {
        "currency": "usd",
        "unit_amount": 1000,
        "transform_quantity": {"divide_by": 5, "round": "up"},
    }
    assert total(spec, users) == usd


def test_car_rental_150_minutes_bills_3_hours_at_10_dollars() -> None:
    spec = {
        "currency": "usd",
        "unit_amount": 1000,
        "transform_quantity": {"divide_by": 60, "round": "up"},
    }
    assert total(spec, 150) == "30.00"


def test_rounding_down_bills_only_whole_packages() -> None:
    spec = {
        "currency": "usd",
        "unit_amount": 1000,
        "transform_quantity": {"divide_by": 60, "round": "down"},
    }
    assert [total(spec, minutes) for minutes in (59, 60, 150)] == [
        "0.00",
        "10.00",
        "20.00",
    ]


@pytest.mark.parametrize(("tokens", "usd"), [(0, "0.00"), (1000, "0.00"), (1001, "0.04"), (26000, "1000.00")])
def test_flat_fee_and_overages_first_1000_free_then_4_cents(tokens: int, usd: str) -> None:
    spec = {
        "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": 1000, "unit_amount": 0}, {"up_to": "inf", "unit_amount": 4}],
    }  # fmt: skip
    assert total(spec, tokens) == usd


FLAT_TIERS = [
    {"up_to": 5, "unit_amount": 0, "flat_amount": 2000},
    {"up_to": 10, "unit_amount": 500, "flat_amount": 1000},
    {"up_to": "inf", "unit_amount": 400},
]


@pytest.mark.parametrize(
    ("fonts", "graduated", "volume"),
    [
        (
            0,
            "20.00",
            "20.00",
        ),  # the first tier's flat amount is due even at 0, as Stripe bills
        (5, "20.00", "20.00"),
        (6, "35.00", "40.00"),  # 20 + 10 flat + 1 x 5 | 10 flat + 6 x 5
        (10, "55.00", "60.00"),
        (
            12,
            "63.00",
            "48.00",
        ),  # 20 + 10 + 5 x 5 + 2 x 4 | 12 x 4, no flat in the last tier
    ],
)
def test_flat_amounts_per_tier(fonts: int, graduated: str, volume: str) -> None:
    spec: dict[str, object] = {
        "currency": "usd",
        "billing_scheme": "tiered",
        "tiers": FLAT_TIERS,
    }
    assert total(spec | {"tiers_mode": "graduated"}, fonts) == graduated
    assert total(spec | {"tiers_mode": "volume"}, fonts) == volume


def test_fractional_quantities_and_bounds() -> None:
    spec = {
        "currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
        "tiers": [{"up_to": "0.5", "unit_amount": 100}, {"up_to": "inf", "unit_amount_decimal": "10.5"}],
    }  # fmt: skip
    assert parse_price(spec).charge(Decimal("2.25")).minor_units == Decimal("68.375")  # 50 + 1.75 x 10.5
    assert total(spec, "2.25") == "0.68"
