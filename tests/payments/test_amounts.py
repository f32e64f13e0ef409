from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.amounts import format_major, from_minor_units, parse_major, to_minor_units
from payments.errors import InvalidAmount
from pricing.money import Currency

CURRENCIES = ["usd", "eur", "jpy", "kwd", "bhd", "clf", "gbp", "isk"]


@pytest.mark.parametrize(
    ("amount", "code", "minor"),
    [
        ("12.70", "usd", 1270),
        ("12.7", "usd", 1270),
        ("0.01", "eur", 1),
        ("1235", "jpy", 1235),
        ("1235.000", "jpy", 1235),
        ("5.125", "kwd", 5125),
        ("1.0001", "clf", 10001),
        ("1E+3", "usd", 100000),
        ("99999999999999999999.99", "usd", 9999999999999999999999),
    ],
)
def test_major_units_convert_with_the_iso_4217_exponent(amount: str, code: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), Currency.of(code)) == minor


@pytest.mark.parametrize(("amount", "code"), [("12.705", "usd"), ("1235.5", "jpy"), ("5.1254", "kwd")])
def test_an_amount_finer_than_the_minor_unit_is_refused_not_rounded(amount: str, code: str) -> None:
    with pytest.raises(InvalidAmount, match="decimal places"):
        to_minor_units(Decimal(amount), Currency.of(code))


@pytest.mark.parametrize("amount", [Decimal("-1.00"), Decimal("NaN"), Decimal("Infinity"), 12.7, 12])
def test_negative_non_finite_and_non_decimal_amounts_are_refused(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        to_minor_units(amount, Currency.of("usd"))  # type: ignore[arg-type]


def test_minor_units_come_back_with_exactly_the_currency_digits() -> None:
    assert str(from_minor_units(1270, Currency.of("usd"))) == "12.70"
    assert str(from_minor_units(1235, Currency.of("jpy"))) == "1235"
    assert str(from_minor_units(5120, Currency.of("kwd"))) == "5.120"
    assert format_major(Decimal(7), Currency.of("eur")) == "7.00"
    assert parse_major("12.7", Currency.of("usd")) == Decimal("12.70")


def test_an_exponent_override_counts_as_the_provider_does() -> None:
    assert to_minor_units(Decimal(5), Currency.of("isk"), exponent=2) == 500
    assert format_major(Decimal(5), Currency.of("isk"), exponent=2) == "5.00"


@given(minor=st.integers(min_value=0, max_value=10**22), code=st.sampled_from(CURRENCIES))
def test_minor_units_round_trip_exactly(minor: int, code: str) -> None:
    currency = Currency.of(code)
    major = from_minor_units(minor, currency)
    assert to_minor_units(major, currency) == minor
    assert -major.as_tuple().exponent == currency.digits  # type: ignore[operator]


@given(
    minor=st.integers(min_value=0, max_value=10**15),
    extra=st.integers(min_value=1, max_value=9),
    code=st.sampled_from(CURRENCIES),
)
def test_any_digit_past_the_minor_unit_is_refused(minor: int, extra: int, code: str) -> None:
    currency = Currency.of(code)
    finer = Decimal(minor * 10 + extra).scaleb(-(currency.digits + 1))
    with pytest.raises(InvalidAmount):
        to_minor_units(finer, currency)
