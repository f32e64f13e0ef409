"""EU VAT, US sales tax and configured rates (issue 4), and `billing tax quote` (design.md §2)."""

import json
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.errors import InvalidField
from pricing.money import Currency, Money
from pricing.tax import OUTSIDE_EU_VAT_NOTE, REVERSE_CHARGE_NOTE, TaxQuote, tax_for
from pricing.tax_rates import load_tax_rates, parse_tax_rates

ROOT = Path(__file__).resolve().parents[2]
EUR = Currency.of("eur")
USD = Currency.of("usd")
DAY = date(2025, 3, 1)
VALID_FR_VAT_ID = "FR40303265045"
VALID_DE_VAT_ID = "DE136695976"
VALID_GR_VAT_ID = "EL094259216"
EU_STATES = sorted(load_tax_rates().eu_vat)


def quote(
    net: str, currency: Currency = EUR, seller: str = "DE", buyer: str = "DE", **kw: object
) -> TaxQuote:
    on = kw.pop("on", DAY)
    assert isinstance(on, date)
    return tax_for(Money.from_major(Decimal(net), currency), seller, buyer, on, **kw)  # type: ignore[arg-type]


def test_domestic_consumer_pays_the_sellers_vat() -> None:
    result = quote("100.00")
    assert result.rate == Decimal(19)
    assert result.tax.format_major() == "19.00"
    assert result.total.format_major() == "119.00"
    assert not result.reverse_charge


def test_domestic_business_is_charged_vat_normally() -> None:
    result = quote("100.00", buyer_vat_id=VALID_DE_VAT_ID)
    assert (result.rate, result.tax.format_major(), result.reverse_charge) == (Decimal(19), "19.00", False)


def test_business_in_another_member_state_is_reverse_charged() -> None:
    result = quote("100.00", buyer="FR", buyer_vat_id=VALID_FR_VAT_ID)
    assert (result.rate, result.tax.format_major(), result.total.format_major()) == (
        Decimal(0),
        "0.00",
        "100.00",
    )
    assert result.reverse_charge
    assert result.note == REVERSE_CHARGE_NOTE
    assert "Reverse charge" in result.note


@pytest.mark.parametrize("vat_id", [VALID_GR_VAT_ID, "GR094259216", " el 094 259 216 "])
def test_greek_vat_ids_use_the_el_prefix(vat_id: str) -> None:
    assert quote("100.00", buyer="GR", buyer_vat_id=vat_id).reverse_charge


def test_consumer_in_another_member_state_pays_the_destination_rate() -> None:
    result = quote("100.00", buyer="FR")
    assert (result.rate, result.tax.format_major(), result.reverse_charge) == (Decimal(20), "20.00", False)
    assert "One-Stop Shop" in result.note


def test_buyer_outside_the_eu_pays_no_eu_vat() -> None:
    result = quote("100.00", buyer="US", buyer_vat_id="anything, not an EU id")
    assert (result.rate, result.tax.format_major(), result.total.format_major()) == (
        Decimal(0),
        "0.00",
        "100.00",
    )
    assert result.note == OUTSIDE_EU_VAT_NOTE


@pytest.mark.parametrize(
    ("state", "rate", "tax"), [("CA", "7.25", "7.25"), ("ny", "4", "4.00"), ("OR", "0", "0.00")]
)
def test_us_buyer_pays_the_state_rate_of_their_state(state: str, rate: str, tax: str) -> None:
    result = quote("100.00", USD, "US", "US", buyer_region=state)
    assert (result.rate, result.tax.format_major()) == (Decimal(rate), tax)
    assert "local taxes not included" in result.note


@pytest.mark.parametrize("region", [None, "", "XX"])
def test_us_sale_without_a_known_state_names_buyer_region(region: str | None) -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", USD, "US", "US", buyer_region=region)
    assert error.value.field == "buyer_region"


def test_other_regions_use_the_configured_rate_else_zero() -> None:
    configured = {"CH": Decimal("8.1")}
    assert quote("100.00", USD, "US", "CH", configured_rates=configured).tax.format_major() == "8.10"
    untaxed = quote("100.00", USD, "US", "JP", configured_rates=configured)
    assert (untaxed.rate, untaxed.tax.format_major()) == (Decimal(0), "0.00")
    with pytest.raises(InvalidField) as error:
        quote("100.00", USD, "US", "CH", configured_rates={"CH": Decimal(101)})
    assert error.value.field == "configured_rates.CH"


@pytest.mark.parametrize(
    ("country", "day", "rate"),
    [
        ("DE", date(2020, 6, 30), "19"),
        ("DE", date(2020, 7, 1), "16"),
        ("DE", date(2020, 10, 1), "16"),
        ("DE", date(2020, 12, 31), "16"),
        ("DE", date(2021, 1, 1), "19"),
        ("IE", date(2020, 12, 1), "21"),
        ("IE", date(2021, 3, 1), "23"),
        ("LU", date(2023, 6, 1), "16"),
        ("LU", date(2024, 1, 1), "17"),
        ("EE", date(2023, 12, 31), "20"),
        ("EE", date(2024, 1, 1), "22"),
        ("EE", date(2025, 7, 1), "24"),
        ("FI", date(2024, 8, 31), "24"),
        ("FI", date(2024, 9, 1), "25.5"),
        ("SK", date(2025, 1, 1), "23"),
        ("RO", date(2025, 7, 31), "19"),
        ("RO", date(2025, 8, 1), "21"),
    ],
)
def test_an_invoice_for_an_old_period_uses_the_rate_then_in_force(country: str, day: date, rate: str) -> None:
    assert quote("100.00", seller=country, buyer=country, on=day).rate == Decimal(rate)


def test_a_date_before_the_rate_history_names_date() -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", on=date(2019, 12, 31))
    assert error.value.field == "date"


@pytest.mark.parametrize(
    ("currency", "net", "rate_from", "tax"),
    [
        ("eur", "1.50", "DE", "0.29"),  # 0.285: half up, not to even (0.28)
        ("jpy", "150", "DE", "29"),  # 28.5 yen, 0 digits
        ("jpy", "999", "FR", "200"),  # 199.8
        ("kwd", "0.150", "DE", "0.029"),  # 0.0285, 3 digits
        ("kwd", "1.250", "FI", "0.319"),  # 0.31875 at 25.5%
    ],
)
def test_tax_is_rounded_half_up_to_the_currencys_minor_unit(
    currency: str, net: str, rate_from: str, tax: str
) -> None:
    result = quote(net, Currency.of(currency), rate_from, rate_from)
    assert result.tax.format_major() == tax
    assert result.total.format_major() == format(Decimal(net) + Decimal(tax), "f")


@pytest.mark.parametrize("vat_id", ["FR40303265046", "FR123", "not a vat id", "DE136695977"])
def test_an_invalid_vat_id_is_refused_not_silently_charged(vat_id: str) -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", buyer="FR", buyer_vat_id=vat_id)
    assert error.value.field == "buyer_vat_id"


def test_a_vat_id_of_another_member_state_is_refused() -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", buyer="IT", buyer_vat_id=VALID_FR_VAT_ID)
    assert error.value.field == "buyer_vat_id"
    assert "IT" in error.value.message


def test_a_domestic_buyer_with_an_invalid_vat_id_is_refused_too() -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", buyer_vat_id="DE136695977")
    assert error.value.field == "buyer_vat_id"


@pytest.mark.parametrize(
    ("seller", "buyer", "field"), [("XX", "DE", "seller_country"), ("DE", "EL", "buyer_country")]
)
def test_an_unknown_country_names_its_field(seller: str, buyer: str, field: str) -> None:
    with pytest.raises(InvalidField) as error:
        quote("100.00", seller=seller, buyer=buyer)
    assert error.value.field == field


def test_the_rate_tables_cover_every_member_state_and_every_state() -> None:
    rates = load_tax_rates()
    assert len(rates.eu_vat) == 27
    assert "GB" not in rates.eu_vat
    assert len(rates.us_sales_tax) == 51
    assert {state for state, history in rates.us_sales_tax.items() if history.rate_on(DAY) == 0} == {
        "AK", "DE", "MT", "NH", "OR",
    }  # fmt: skip


def test_rate_data_out_of_order_is_refused_naming_the_path() -> None:
    periods = [{"from": "2021-01-01", "rate": "19"}, {"from": "2020-01-01", "rate": "16"}]
    with pytest.raises(InvalidField) as error:
        parse_tax_rates({"eu_vat_standard": {"DE": periods}, "us_state_sales_tax": {"CA": periods[:1]}})
    assert error.value.field == "eu_vat_standard.DE"


amounts = st.decimals(min_value=Decimal(-1000000), max_value=Decimal(1000000), places=2)
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@given(net=amounts, state=st.sampled_from(EU_STATES), day=days)
def test_tax_is_the_exact_tax_rounded_half_up(net: Decimal, state: str, day: date) -> None:
    result = quote(str(net), seller=state, buyer=state, on=day)
    exact_cents = net * 100 * result.rate / 100
    assert abs(result.tax.minor_units - exact_cents) <= Decimal("0.5")
    assert result.total == Money.from_major(net, EUR) + result.tax
    assert (-result.tax).minor_units == quote(str(-net), seller=state, buyer=state, on=day).tax.minor_units


@given(seller=st.sampled_from(EU_STATES), buyer=st.sampled_from(EU_STATES), day=days)
def test_an_eu_consumer_always_pays_their_own_states_rate(seller: str, buyer: str, day: date) -> None:
    assert (
        quote("100.00", seller=seller, buyer=buyer, on=day).rate
        == quote("100.00", seller=buyer, buyer=buyer, on=day).rate
    )


@given(day=days)
def test_rates_change_only_on_recorded_dates(day: date) -> None:
    history = load_tax_rates().eu_vat["DE"]
    starts = {period.start for period in history.periods}
    if day not in starts:
        assert history.rate_on(day) == history.rate_on(day - timedelta(days=1))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "tax", "quote", *args],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip


def test_cli_prints_the_design_shape() -> None:
    result = run_cli("--net", "100", "--currency", "EUR", "--seller-country", "DE", "--buyer-country", "DE",
                     "--date", "2025-03-01")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        '{"rate": "19", "tax": "19.00", "total": "119.00", "reverse_charge": false, "note": "VAT 19% (DE)"}\n'
    )
    assert list(json.loads(result.stdout)) == ["rate", "tax", "total", "reverse_charge", "note"]


def test_cli_historical_reverse_charge_and_us_state() -> None:
    old = run_cli("--net", "100.00", "--currency", "eur", "--seller-country", "de", "--buyer-country", "de",
                  "--date", "2020-10-01")  # fmt: skip
    assert json.loads(old.stdout)["rate"] == "16"
    reverse = run_cli("--net", "100.00", "--currency", "EUR", "--seller-country", "DE", "--buyer-country", "FR",
                      "--buyer-vat-id", VALID_FR_VAT_ID, "--date", "2025-03-01")  # fmt: skip
    assert json.loads(reverse.stdout) == {
        "rate": "0", "tax": "0.00", "total": "100.00", "reverse_charge": True, "note": REVERSE_CHARGE_NOTE,
    }  # fmt: skip
    us = run_cli("--net", "100.00", "--currency", "USD", "--seller-country", "US", "--buyer-country", "US",
                 "--buyer-region", "CA", "--date", "2025-03-01")  # fmt: skip
    assert json.loads(us.stdout)["total"] == "107.25"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--buyer-country", "FR", "--buyer-vat-id", "FR40303265046"], "buyer_vat_id"),
        (["--buyer-country", "QQ"], "buyer_country"),
        (["--buyer-country", "DE", "--date", "2025-13-01"], "date"),
        (["--buyer-country", "DE", "--net", "1.001"], "net"),
        (["--buyer-country", "DE", "--net", "ten"], "net"),
        (["--buyer-country", "DE", "--currency", "XYZ"], "currency"),
    ],
)
def test_cli_bad_input_exits_nonzero_naming_the_field(args: list[str], field: str) -> None:
    defaults = {"--net": "100", "--currency": "EUR", "--seller-country": "DE"}
    for flag, value in defaults.items():
        if flag not in args:
            args = [*args, flag, value]
    result = run_cli(*args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"{field}:" in result.stderr
