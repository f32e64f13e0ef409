"""FX conversion at a dated ECB reference rate (issue 4, design.md §7).

The files under `data/` are made-up sample data in the ECB layouts, not published rates.
Expected amounts were worked by hand with exact fractions, e.g. $1,234.56 at USD 1.0811 and
JPY 161.23 is 1234.56 × 161.23 / 1.0811 = 184116.2786… yen.
"""

from datetime import date, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.errors import CurrencyMismatch
from pricing.fx import FX_ARITHMETIC, InvalidRates, NoRateInForce, RateTable, convert
from pricing.money import Currency, Money

DATA = Path(__file__).parent / "data"
EUR, USD, JPY, GBP, ISK, KWD, HRK, CHF = (
    Currency.of(code) for code in ("EUR", "USD", "JPY", "GBP", "ISK", "KWD", "HRK", "CHF")
)
FRIDAY, SATURDAY, SUNDAY, MONDAY = (
    date(2026, 11, 20),
    date(2026, 11, 21),
    date(2026, 11, 22),
    date(2026, 11, 23),
)


@pytest.fixture(scope="module")
def history() -> RateTable:
    with (DATA / "sample-eurofxref-hist.csv").open(encoding="utf-8") as stream:
        return RateTable.from_ecb_csv(stream)


def usd(major: str) -> Money:
    return Money.from_major(Decimal(major), USD)


# -- parsing ----------------------------------------------------------------------------------


def test_the_daily_layout_parses_its_spelled_out_date_spaces_and_trailing_column() -> None:
    table = RateTable.from_ecb_csv((DATA / "sample-eurofxref.csv").read_text(encoding="utf-8"))
    assert table.dates == (date(2026, 11, 24),)
    fx = table.rate(EUR, JPY, date(2026, 11, 24))
    assert (fx.to_units, fx.from_units, fx.rate_date) == (Decimal("160.87"), Decimal(1), date(2026, 11, 24))
    assert table.rate(EUR, GBP, date(2026, 11, 24)).to_units == Decimal("0.85215")
    assert len(table.currencies) == 15  # 14 columns and EUR


def test_the_historical_layout_parses_iso_dates_newest_first(history: RateTable) -> None:
    assert history.dates[0] == date(2026, 11, 12) and history.dates[-1] == date(2026, 11, 24)
    assert len(history.dates) == 9  # business days only
    assert history.rate(EUR, USD, FRIDAY).to_units == Decimal("1.0811")


def test_n_a_means_not_published_and_a_currency_never_published_is_unknown(history: RateTable) -> None:
    assert HRK not in history.currencies  # an N/A column throughout, as for a retired currency
    with pytest.raises(NoRateInForce, match="no rate for HRK"):
        history.rate(EUR, HRK, FRIDAY)
    # ISK is N/A on Friday: Friday's rate is Thursday's figure, with Thursday's date.
    fx = history.rate(EUR, ISK, FRIDAY)
    assert (fx.to_units, fx.rate_date) == (Decimal("145.90"), date(2026, 11, 19))


def test_both_layouts_agree_on_the_same_day(history: RateTable) -> None:
    daily = RateTable.from_ecb_csv((DATA / "sample-eurofxref.csv").read_text(encoding="utf-8"))
    day = date(2026, 11, 24)
    for currency in daily.currencies - {EUR}:
        assert daily.rate(EUR, currency, day) == history.rate(EUR, currency, day)


def test_a_rate_is_taken_from_its_text_never_through_float() -> None:
    table = RateTable.from_ecb_csv("Date,JPY,USD,\n2026-11-20,161.230000000001,1.000000000000000001,\n")
    fx = table.rate(EUR, JPY, FRIDAY)
    assert fx.to_units == Decimal("161.230000000001")
    assert table.rate(EUR, USD, FRIDAY).to_units == Decimal("1.000000000000000001")
    assert str(fx) == "1 EUR = 161.230000000001 JPY (ECB euro reference rate, 2026-11-20)"
    # €1,000,000.00 is exactly 161,230,000.000001 yen before rounding.
    yen = convert(Money.from_major(Decimal(1_000_000), EUR), fx)
    assert yen.minor_units == Decimal("161230000.000001")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("Day,USD,\n2026-11-20,1.08,\n", "line 1"),
        ("Date,USD,XYZ,\n2026-11-20,1.08,1,\n", "line 1.XYZ"),
        ("Date,USD,EUR,\n2026-11-20,1.08,1,\n", "line 1.EUR"),
        ("Date,USD,\n2026-11-20,1.08e0,\n", "line 2.USD"),
        ("Date,USD,\n2026-11-20,-1.08,\n", "line 2.USD"),
        ("Date,USD,\n2026-11-20,0,\n", "line 2.USD"),
        ("Date,USD,\n2026-11-20,,\n", "line 2.USD"),
        ("Date,USD,\n2026-11-20,1_080,\n", "line 2.USD"),
        ("Date,USD,\n2026-11-20,0.0000000000000000001,\n", "line 2.USD"),
        ("Date,USD,\n20 Novembre 2026,1.08,\n", "line 2"),
        ("Date,USD,\n2026-02-30,1.08,\n", "line 2"),
        ("Date,USD,\n2026-11-20,1.08,\n2026-11-20,1.09,\n", "line 3"),
        ("Date,USD,JPY,\n2026-11-20,1.08,\n", "line 2.JPY"),
        ("Date,USD,JPY,\n2026-11-20,1.08\n", "line 2"),
        ("Date,USD,\n2026-11-20,1.08,161,\n", "line 2.column 3"),
        ("Date,USD,\n", ""),
    ],
)
def test_a_malformed_rates_file_is_refused_naming_line_and_column(text: str, field: str) -> None:
    with pytest.raises(InvalidRates) as error:
        RateTable.from_ecb_csv(text)
    assert error.value.field == field


# -- conversion, rounded once in the invoice currency -----------------------------------------


def test_a_usd_price_on_a_jpy_invoice_rounds_to_the_yen(history: RateTable) -> None:
    fx = history.rate(USD, JPY, FRIDAY)
    assert (fx.from_units, fx.to_units, fx.rate_date) == (Decimal("1.0811"), Decimal("161.23"), FRIDAY)
    yen = convert(usd("1234.56"), fx)
    assert abs(Fraction(yen.minor_units) - Fraction(1990481088, 10811)) < Fraction(1, 10**50)
    assert yen.rounded() == Money(Decimal(184116), JPY)
    assert yen.rounded().format_major() == "184116"
    assert str(fx) == "1 USD = 149.1351401 JPY (ECB euro reference rate, 2026-11-20)"


def test_a_usd_price_on_a_eur_invoice_rounds_to_the_cent(history: RateTable) -> None:
    euros = convert(usd("1234.56"), history.rate(USD, EUR, FRIDAY))  # 114194.8015… cents
    assert euros.rounded().format_major() == "1141.95"


def test_kwd_keeps_three_digits_from_a_non_ecb_table() -> None:
    # The ECB publishes no KWD rate; a tenant billed in KWD needs a table from another source
    # in the same layout. These figures are made up.
    treasury = RateTable.from_ecb_csv("Date,USD,KWD,\n2026-11-20,1.0811,0.3318,\n", source="treasury")
    fils = convert(usd("1234.56"), treasury.rate(USD, KWD, FRIDAY))  # 378898.3516… fils
    assert fils.rounded().format_major() == "378.898"
    eur_fils = convert(Money.from_major(Decimal("1234.56"), EUR), treasury.rate(EUR, KWD, FRIDAY))
    assert eur_fils.minor_units == Decimal("409627.008")
    assert str(eur_fils.rounded()) == "409.627 KWD"


def test_an_exact_half_yen_rounds_up_because_the_cross_rate_is_never_rounded() -> None:
    # $54.06 × 160.03 / 1.0812 is exactly ¥8001.5, but 160.03 / 1.0812 = 148.0114687384…
    # never ends: $54.06 × that quotient at 60 digits is 8001.4999…98, which would round down.
    table = RateTable.from_ecb_csv("Date,USD,JPY,\n2026-11-20,1.0812,160.03,\n")
    fx = table.rate(USD, JPY, FRIDAY)
    assert FX_ARITHMETIC.multiply(Decimal("54.06"), fx.rate) < Decimal("8001.5")
    yen = convert(usd("54.06"), fx)
    assert yen.minor_units == Decimal("8001.5")
    assert yen.rounded().minor_units == 8002


def test_converting_ignores_the_callers_decimal_context(history: RateTable) -> None:
    fx = history.rate(USD, JPY, FRIDAY)
    with localcontext() as context:
        context.prec = 3
        yen = convert(usd("1234.56"), fx)
    assert yen.rounded().minor_units == 184116


def test_a_rate_converts_only_its_own_currency(history: RateTable) -> None:
    with pytest.raises(CurrencyMismatch):
        convert(Money.from_major(Decimal(1), GBP), history.rate(USD, JPY, FRIDAY))


# -- which rate is in force --------------------------------------------------------------------


@pytest.mark.parametrize("day", [SATURDAY, SUNDAY])
def test_a_weekend_uses_fridays_rate_and_prints_fridays_date(history: RateTable, day: date) -> None:
    fx = history.rate(USD, JPY, day)
    assert fx == history.rate(USD, JPY, FRIDAY)
    assert fx.rate_date == FRIDAY
    assert history.rate(USD, JPY, MONDAY).rate_date == MONDAY


def test_no_rate_before_the_table_starts_or_after_it_goes_stale(history: RateTable) -> None:
    with pytest.raises(NoRateInForce, match="between 2026-11-04 and 2026-11-11"):
        history.rate(USD, JPY, date(2026, 11, 11))
    assert history.rate(USD, JPY, date(2026, 12, 1)).rate_date == date(2026, 11, 24)  # 7 days old
    with pytest.raises(NoRateInForce):
        history.rate(USD, JPY, date(2026, 12, 2))
    with pytest.raises(NoRateInForce):
        history.rate(USD, JPY, SUNDAY, max_age=timedelta(days=1))


def test_a_currency_the_table_does_not_list_has_no_rate() -> None:
    table = RateTable.from_ecb_csv("Date,USD,\n2026-11-20,1.0811,\n")
    with pytest.raises(NoRateInForce, match="no rate for CHF"):
        table.rate(USD, CHF, FRIDAY)


def test_the_same_currency_converts_at_one_on_the_day_asked(history: RateTable) -> None:
    day = date(2030, 1, 1)  # outside the table: no rate is needed
    fx = history.rate(JPY, JPY, day)
    assert (fx.rate, fx.rate_date) == (Decimal(1), day)
    assert convert(Money(Decimal("1234.5"), JPY), fx) == Money(Decimal("1234.5"), JPY)


def test_cross_rates_go_through_eur(history: RateTable) -> None:
    usd_jpy = history.rate(USD, JPY, FRIDAY)
    assert usd_jpy.rate == FX_ARITHMETIC.divide(Decimal("161.23"), Decimal("1.0811"))
    assert history.rate(JPY, USD, FRIDAY) == usd_jpy.inverse()
    assert history.rate(USD, EUR, FRIDAY).printed_rate() == "0.9249838128"


# -- properties --------------------------------------------------------------------------------

CURRENCIES = [EUR, USD, JPY, GBP, KWD]
figures = st.integers(min_value=1, max_value=10**9).map(lambda n: Decimal(n).scaleb(-4))
minor_units = st.integers(min_value=-(10**12), max_value=10**12).map(Decimal)


def table_of(usd_jpy_gbp_kwd: list[Decimal]) -> RateTable:
    return RateTable({FRIDAY: dict(zip([USD, JPY, GBP, KWD], usd_jpy_gbp_kwd, strict=True))})


def half_up(value: Fraction) -> int:
    """ROUND_HALF_UP worked with exact fractions, independent of `decimal`."""
    magnitude = int(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


@given(st.lists(figures, min_size=4, max_size=4), st.sampled_from(CURRENCIES), st.sampled_from(CURRENCIES))
def test_rounding_the_conversion_equals_rounding_the_exact_fraction(
    figures_: list[Decimal], source: Currency, target: Currency
) -> None:
    fx = table_of(figures_).rate(source, target, FRIDAY)
    for units in (Decimal(1), Decimal(54_06), Decimal(-12_345_678_901)):
        exact = Fraction(units) * Fraction(fx.to_units) / Fraction(fx.from_units)
        exact *= Fraction(10) ** (target.digits - source.digits)
        assert convert(Money(units, source), fx).rounded().minor_units == half_up(exact)


@given(
    st.lists(figures, min_size=4, max_size=4),
    st.sampled_from(CURRENCIES),
    st.sampled_from(CURRENCIES),
    minor_units,
)
def test_a_round_trip_is_off_by_at_most_half_the_coarser_minor_unit(
    figures_: list[Decimal], a: Currency, b: Currency, units: Decimal
) -> None:
    table = table_of(figures_)
    there = convert(Money(units, a), table.rate(a, b, FRIDAY)).rounded()
    back = convert(there, table.rate(b, a, FRIDAY)).rounded()
    # Rounding in B is off by up to half of B's minor unit, which is worth `b_unit_in_a` of A's;
    # rounding back adds half of A's. Within one minor unit whenever B's is no coarser than A's;
    # USD→JPY→USD can be a cent off, KWD→JPY→KWD (1 yen ≈ 2 fils) more.
    b_unit_in_a = convert(Money(Decimal(1), b), table.rate(b, a, FRIDAY)).minor_units
    error = abs(back.minor_units - units)
    assert error <= b_unit_in_a / 2 + Decimal("0.5")
    if b_unit_in_a <= 1:
        assert error <= 1
