import json
from decimal import Decimal

import pytest

from pricing.errors import InvalidPrice
from pricing.graduated import GraduatedPrice
from pricing.package import PackagePrice, PackageRounding
from pricing.per_unit import PerUnitPrice
from pricing.price_spec import parse_price
from pricing.price_tiers import PriceTier
from pricing.volume import VolumePrice

from .factories import USD

DESIGN_PER_UNIT = """{"currency": "usd", "billing_scheme": "per_unit", "unit_amount_decimal": "0.1",
 "transform_quantity": {"divide_by": 100, "round": "up"}}"""
DESIGN_TIERED = """{"currency": "usd", "billing_scheme": "tiered", "tiers_mode": "graduated",
 "tiers": [{"up_to": 1000, "unit_amount_decimal": "5", "flat_amount_decimal": "0"},
           {"up_to": "inf", "unit_amount_decimal": "4"}]}"""


def test_design_examples_parse_into_their_models() -> None:
    package = parse_price(json.loads(DESIGN_PER_UNIT, parse_float=Decimal))
    assert package == PackagePrice(USD, Decimal("0.1"), 100, PackageRounding.UP)
    graduated = parse_price(json.loads(DESIGN_TIERED, parse_float=Decimal))
    assert graduated == GraduatedPrice(
        USD, (PriceTier(Decimal(1000), Decimal(5)), PriceTier(None, Decimal(4)))
    )


def test_per_unit_is_stripes_default_scheme_and_currency_case_is_free() -> None:
    assert parse_price({"currency": "USD", "unit_amount": 25}) == PerUnitPrice(USD, Decimal(25))


def test_a_stripe_price_object_with_both_amount_fields_reads() -> None:
    stripe_object = {
        "id": "price_1", "object": "price", "active": True, "currency": "usd",
        "billing_scheme": "per_unit", "unit_amount": 1000, "unit_amount_decimal": "1000",
        "tiers_mode": None, "transform_quantity": None, "product": "prod_1",
        "recurring": {"interval": "month", "usage_type": "metered"}, "metadata": {},
    }  # fmt: skip
    assert parse_price(stripe_object) == PerUnitPrice(USD, Decimal(1000))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"unit_amount_decimal": "1"}, "price.currency"),
        ({"currency": "zzz", "unit_amount_decimal": "1"}, "price.currency"),
        ({"currency": "usd"}, "price.unit_amount_decimal"),
        ({"currency": "usd", "unit_amount_decimal": 0.1}, "price.unit_amount_decimal"),
        (
            {"currency": "usd", "unit_amount_decimal": "0.1234567890123"},
            "price.unit_amount_decimal",
        ),
        ({"currency": "usd", "unit_amount_decimal": "-1"}, "price.unit_amount_decimal"),
        (
            {"currency": "usd", "unit_amount_decimal": "abc"},
            "price.unit_amount_decimal",
        ),
        (
            {"currency": "usd", "unit_amount": 1, "unit_amount_decimal": "2"},
            "price.unit_amount",
        ),
        ({"currency": "usd", "unit_amount": 1.5}, "price.unit_amount"),
        ({"currency": "usd", "unit_amount": True}, "price.unit_amount"),
        ({"currency": "usd", "billing_scheme": "flat"}, "price.billing_scheme"),
        (
            {"currency": "usd", "unit_amount": 1, "tier_mode": "volume"},
            "price.tier_mode",
        ),
        (
            {"currency": "usd", "unit_amount": 1, "custom_unit_amount": {}},
            "price.custom_unit_amount",
        ),
        (
            {
                "currency": "usd",
                "unit_amount": 1,
                "transform_quantity": {"divide_by": 0, "round": "up"},
            },
            "price.transform_quantity.divide_by",
        ),
        (
            {
                "currency": "usd",
                "unit_amount": 1,
                "transform_quantity": {"divide_by": 5, "round": "near"},
            },
            "price.transform_quantity.round",
        ),
    ],
)
def test_bad_per_unit_specs_name_the_failing_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPrice) as error:
        parse_price(spec)
    assert error.value.field == field


def tiered(mode: str = "graduated", **extra: object) -> dict[str, object]:
    return {
        "currency": "usd", "billing_scheme": "tiered", "tiers_mode": mode,
        "tiers": [{"up_to": 5, "unit_amount_decimal": "700"}, {"up_to": None, "unit_amount": 600}],
    } | extra  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tiers_mode": "staircase"}, "price.tiers_mode"),
        ({"tiers": []}, "price.tiers"),
        ({"tiers": "5"}, "price.tiers"),
        ({"tiers": [{"up_to": "inf", "unit_amount": 1}, {"up_to": 5, "unit_amount": 1}]}, "price.tiers[0].up_to"),
        ({"tiers": [{"up_to": 5, "unit_amount": 1}, {"up_to": 6, "unit_amount": 1}]}, "price.tiers[1].up_to"),
        ({"tiers": [{"up_to": 10, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1}, {"up_to": "inf", "unit_amount": 1}]}, "price.tiers[1].up_to"),
        ({"tiers": [{"up_to": 0, "unit_amount": 1}, {"up_to": "inf", "unit_amount": 1}]}, "price.tiers[0].up_to"),
        ({"tiers": [{"up_to": 5.5, "unit_amount": 1}, {"up_to": "inf", "unit_amount": 1}]}, "price.tiers[0].up_to"),
        ({"tiers": [{"up_to": "inf"}]}, "price.tiers[0]"),
        ({"tiers": [{"up_to": "inf", "unit_amount": 1, "flat": 2}]}, "price.tiers[0].flat"),
        ({"tiers": [{"up_to": "inf", "flat_amount_decimal": "1.0000000000001"}]}, "price.tiers[0].flat_amount_decimal"),
        ({"transform_quantity": {"divide_by": 5, "round": "up"}}, "price.transform_quantity"),
        ({"unit_amount_decimal": "5"}, "price.unit_amount_decimal"),
    ],
)  # fmt: skip
def test_bad_tiered_specs_name_the_failing_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPrice) as error:
        parse_price(tiered() | changes)
    assert error.value.field == field


def test_tier_bounds_may_be_fractional_numbers_or_decimal_strings() -> None:
    price = parse_price(
        tiered(
            "volume",
            tiers=[
                {"up_to": Decimal("0.5"), "unit_amount": 3},
                {"up_to": "2.25", "unit_amount": 2},
                {"up_to": "inf", "unit_amount": 1},
            ],
        )
    )
    assert isinstance(price, VolumePrice)
    assert [tier.up_to for tier in price.tiers] == [
        Decimal("0.5"),
        Decimal("2.25"),
        None,
    ]


def test_price_errors_carry_a_readable_message() -> None:
    with pytest.raises(InvalidPrice, match=r"^price\.tiers\[1\]\.up_to: must be greater"):
        parse_price(
            tiered(
                tiers=[
                    {"up_to": 5, "unit_amount": 1},
                    {"up_to": 5, "unit_amount": 1},
                    {"up_to": "inf", "unit_amount": 1},
                ]
            )
        )
