from decimal import Decimal, localcontext

import pytest

from pricing.errors import CurrencyMismatch, InvalidField
from pricing.money import Currency, Money, plain
from pricing.per_unit import PerUnitPrice


@pytest.mark.parametrize(
    ("code", "digits"),
    [("usd", 2), ("eur", 2), ("jpy", 0), ("bhd", 3), ("kwd", 3), ("clf", 4)],
)
def test_minor_unit_digits_come_from_babel(code: str, digits: int) -> None:
    assert Currency.of(code.upper()).digits == digits


def test_unknown_currency_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidField) as error:
        Currency.of("xyz")
    assert error.value.field == "currency"


@pytest.mark.parametrize(
    ("minor", "rounded"),
    [
        ("1234.5", 1235),
        ("1234.49", 1234),
        ("0.5", 1),
        ("2.5", 3),
        ("-0.5", -1),
        ("-1234.5", -1235),
    ],
)
def test_rounding_is_half_up_to_the_minor_unit(minor: str, rounded: int) -> None:
    assert Money(Decimal(minor), Currency("usd")).minor_units_int() == rounded


@pytest.mark.parametrize(
    ("code", "minor", "major"),
    [
        ("usd", "1270", "12.70"),
        ("usd", "5", "0.05"),
        ("jpy", "1234.5", "1235"),
        ("bhd", "1500", "1.500"),
        ("clf", "12345", "1.2345"),
        ("usd", "-0.4", "0.00"),
    ],
)
def test_major_units_carry_the_currency_digits(code: str, minor: str, major: str) -> None:
    assert Money(Decimal(minor), Currency(code)).format_major() == major


def test_from_major_and_back() -> None:
    amount = Money.from_major(Decimal("12.70"), Currency("usd"))
    assert amount.minor_units == 1270
    assert str(amount) == "12.70 USD"


def test_amounts_in_different_currencies_do_not_add() -> None:
    with pytest.raises(CurrencyMismatch):
        _ = Money(Decimal(1), Currency("usd")) + Money(Decimal(1), Currency("eur"))


def test_a_callers_decimal_context_cannot_change_an_amount() -> None:
    price = PerUnitPrice(Currency("usd"), Decimal("0.123456789012"))
    expected = price.charge(Decimal("98765.4321")).minor_units
    with localcontext() as context:
        context.prec = 3
        assert price.charge(Decimal("98765.4321")).minor_units == expected
    assert expected == Decimal("12193.2631124487120852")  # exact: 12 + 4 decimal places


@pytest.mark.parametrize(
    ("value", "text"),
    [("1E+3", "1000"), ("1234.500", "1234.5"), ("-0", "0"), ("0.000001", "0.000001")],
)
def test_plain_decimal_strings_have_no_exponent_or_trailing_zeros(value: str, text: str) -> None:
    assert plain(Decimal(value)) == text
