"""Invoice composition (issue 4, design.md §4 and §7): lines, credits, tax, FX, totals to the cent.

Ratings come from the default catalog through `rate_period`, as production builds them. The rates
table below is made-up sample data in the ECB historical layout, not published rates. Expected
amounts were worked by hand, e.g. $50.00 at USD 1.0811 is 5000 / 1.0811 = 4624.919… euro cents.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicing.composition import InvoiceDraft, compose_invoice
from pricing.catalog import load_default_catalog
from pricing.credits import CreditLedger, Debit, Grant, GrantKind
from pricing.errors import CurrencyMismatch, InvalidField
from pricing.fx import FxRate, RateTable
from pricing.money import Currency, Money
from pricing.periods import Period
from pricing.plans import Tier
from pricing.rating import Rating, rate_period
from pricing.tax import OUTSIDE_EU_VAT_NOTE, REVERSE_CHARGE_NOTE
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

USD, EUR, JPY, KWD = (Currency(code) for code in ("usd", "eur", "jpy", "kwd"))
MARCH_2025 = Period.calendar_month(2025, 3)
JUNE_2025 = Period.calendar_month(2025, 6)
VALID_FR_VAT_ID = "FR40303265045"
RATES = RateTable.from_ecb_csv(
    "Date,USD,JPY,KWD,\n2025-03-31,1.0811,161.23,0.3329,\n2025-03-28,1.0795,162.01,0.3322,\n"
)


def rating(tier: Tier, *, period: Period = MARCH_2025, **quantities: str | int) -> Rating:
    """One hour of usage early in `period`, rated with the default catalog."""
    hour = period.start.replace(day=5, hour=10)
    row = HourlyUsage(hour, **{meter: Decimal(q) for meter, q in quantities.items()})
    return rate_period([row], TenantPricing("t", tier), load_default_catalog(), period)


def ledger(currency: Currency = USD, *grants_in_minor_units: int) -> CreditLedger:
    result = CreditLedger("t", currency)
    for index, amount in enumerate(grants_in_minor_units):
        result = result.append(
            Grant(f"g{index}", datetime(2025, 1, 1, tzinfo=UTC), Decimal(amount), GrantKind.PREPAID)
        )
    return result


def compose(
    rated: Rating,
    *,
    currency: Currency = USD,
    fx: FxRate | None = None,
    credits: CreditLedger | None = None,
    seller: str = "DE",
    buyer: str = "DE",
    vat_id: str | None = None,
    region: str | None = None,
    tax_date: date = date(2025, 3, 31),
    adjustments: tuple = (),
) -> tuple[InvoiceDraft, CreditLedger]:
    return compose_invoice(
        rated,
        billing_currency=currency,
        fx=fx,
        ledger=credits if credits is not None else ledger(currency),
        at=rated.period.end,
        reference="inv-1",
        seller_country=seller,
        buyer_country=buyer,
        buyer_vat_id=vat_id,
        buyer_region=region,
        tax_date=tax_date,
        usage={},
        adjustments=adjustments,
    )


def amounts(draft: InvoiceDraft) -> dict[str, object]:
    """The rounded amounts of `draft.to_json()`: each line's, then the invoice's."""
    document = draft.to_json()
    keys = ("subtotal_before_credits", "credits_applied", "subtotal", "tax", "total")
    lines = [line.to_json()["amount"] for line in draft.lines]
    return {"lines": lines} | {key: document[key] for key in keys}


# $12.345 of executions rounds half up to 12.35, 3.14 GB of egress at 10¢ is 0.314 -> 0.31.
ZERO_TENANT = rating(Tier.ZERO, executions=12345, network_gb="3.14")
# 1,000 CPU-hours at 5¢ is $50.00, 1,234.5 GB-hours at 1¢ is $12.345.
SHARED_TENANT = rating(Tier.SHARED, cpu_seconds=3600 * 1000, memory_gb_hours="1234.5")


def test_zero_tier_in_usd_with_domestic_german_vat() -> None:
    draft, _ = compose(ZERO_TENANT)
    # VAT 19% of 12.66 is 2.4054 -> 2.41.
    assert amounts(draft) == {
        "lines": ["0.31", "12.35"],
        "subtotal_before_credits": "12.66",
        "credits_applied": "0.00",
        "subtotal": "12.66",
        "tax": "2.41",
        "total": "15.07",
    }
    assert draft.tax.note == "VAT 19% (DE)" and draft.fx_note is None


def test_shared_tier_in_eur_from_usd_prices_with_eu_reverse_charge() -> None:
    fx = RATES.rate(USD, EUR, date(2025, 4, 1))
    draft, _ = compose(SHARED_TENANT, currency=EUR, fx=fx, buyer="FR", vat_id=VALID_FR_VAT_ID)
    # 5000 / 1.0811 = 4624.92 -> 46.25; 1234.5 / 1.0811 = 1141.89 -> 11.42.
    assert amounts(draft) == {
        "lines": ["46.25", "11.42"],
        "subtotal_before_credits": "57.67",
        "credits_applied": "0.00",
        "subtotal": "57.67",
        "tax": "0.00",
        "total": "57.67",
    }
    assert draft.tax.reverse_charge and draft.tax.note == REVERSE_CHARGE_NOTE
    assert draft.fx_note == "1 USD = 0.9249838128 EUR (ECB euro reference rate, 2025-03-31)"
    assert draft.to_json()["fx"] == draft.fx_note


def test_a_line_is_converted_unrounded_and_rounded_once() -> None:
    fx = RATES.rate(USD, EUR, date(2025, 3, 31))
    # 5 executions are 0.5¢: rounded first that is 1¢ = 0.925 euro cents -> 0.01 EUR (rounding
    # twice); converted unrounded it is 0.4625 euro cents -> 0.00 EUR.
    draft, _ = compose(rating(Tier.ZERO, executions=5), currency=EUR, fx=fx)
    assert [line.amount for line in draft.lines] == [Money(Decimal(0), EUR)]
    assert draft.lines[0].quantity == 5, "a line that rounds to zero stays on the invoice"


def test_jpy_invoice_from_usd_prices_has_no_minor_digits() -> None:
    fx = RATES.rate(USD, JPY, date(2025, 3, 31))
    draft, _ = compose(rating(Tier.ZERO, executions=12345, network_gb=5), currency=JPY, fx=fx, buyer="JP")
    # 50¢ × 161.23 / 1.0811 = 74.57 -> 75 yen; $12.345 -> 1841.07 -> 1841 yen.
    assert amounts(draft) == {
        "lines": ["75", "1841"],
        "subtotal_before_credits": "1916",
        "credits_applied": "0",
        "subtotal": "1916",
        "tax": "0",
        "total": "1916",
    }
    assert draft.tax.note == OUTSIDE_EU_VAT_NOTE
    assert draft.fx_note == "1 USD = 149.1351401 JPY (ECB euro reference rate, 2025-03-31)"


def test_us_state_sales_tax() -> None:
    draft, _ = compose(SHARED_TENANT, seller="US", buyer="US", region="CA")
    # 7.25% of 62.35 is 4.520375 -> 4.52.
    assert amounts(draft) == {
        "lines": ["50.00", "12.35"],
        "subtotal_before_credits": "62.35",
        "credits_applied": "0.00",
        "subtotal": "62.35",
        "tax": "4.52",
        "total": "66.87",
    }
    assert draft.tax.rate == Decimal("7.25")


@pytest.mark.parametrize(
    ("grant", "credits", "subtotal", "tax", "total", "left"),
    [
        # 7.66 × 19% = 1.4554 -> 1.46.
        (500, "5.00", "7.66", "1.46", "9.12", "0.00"),
        (1266, "12.66", "0.00", "0.00", "0.00", "0.00"),
        (2000, "12.66", "0.00", "0.00", "0.00", "7.34"),
    ],
    ids=["smaller", "equal", "larger"],
)
def test_credits_reduce_the_subtotal_before_tax_and_never_below_zero(
    grant: int, credits: str, subtotal: str, tax: str, total: str, left: str
) -> None:
    draft, updated = compose(ZERO_TENANT, credits=ledger(USD, grant))
    document = draft.to_json()
    assert (document["credits_applied"], document["subtotal"]) == (credits, subtotal)
    assert (document["tax"], document["total"]) == (tax, total)
    assert updated.balance(MARCH_2025.end).format_major() == left
    debits = [entry for entry in updated.entries if isinstance(entry, Debit)]
    assert [(d.amount, d.reference) for d in debits] == [(draft.credits_applied.minor_units, "inv-1")]


def test_credits_in_another_currency_are_not_applied_and_the_invoice_says_so() -> None:
    credits = ledger(EUR, 1000)
    draft, updated = compose(ZERO_TENANT, credits=credits)
    assert draft.credits_applied == Money.zero(USD) and draft.total.format_major() == "15.07"
    assert draft.credits_note is not None and "eur" in draft.credits_note
    assert updated == credits


def test_a_historical_vat_rate_applies_on_the_tax_date() -> None:
    june = rating(Tier.SHARED, period=JUNE_2025, cpu_seconds=3600 * 1000)  # $50.00
    before, _ = compose(june, seller="EE", buyer="EE", tax_date=date(2025, 6, 30))
    after, _ = compose(june, seller="EE", buyer="EE", tax_date=date(2025, 7, 1))
    assert (before.tax.rate, before.total.format_major()) == (Decimal(22), "61.00")
    assert (after.tax.rate, after.total.format_major()) == (Decimal(24), "62.00")


def test_another_currency_needs_a_rate() -> None:
    with pytest.raises(InvalidField) as error:
        compose(ZERO_TENANT, currency=EUR)
    assert error.value.field == "fx"


@pytest.mark.parametrize(
    ("currency", "fx"),
    [
        (EUR, RATES.rate(USD, JPY, date(2025, 3, 31))),
        (EUR, RATES.rate(EUR, USD, date(2025, 3, 31))),
        (USD, RATES.rate(USD, EUR, date(2025, 3, 31))),
    ],
)
def test_a_rate_for_other_currencies_is_refused(currency: Currency, fx: FxRate) -> None:
    with pytest.raises(CurrencyMismatch):
        compose(ZERO_TENANT, currency=currency, fx=fx)


def test_an_identity_rate_changes_nothing() -> None:
    identity = RATES.rate(USD, USD, date(2025, 3, 31))
    assert compose(ZERO_TENANT, fx=identity) == compose(ZERO_TENANT)


def test_another_tenants_ledger_is_refused() -> None:
    with pytest.raises(InvalidField) as error:
        compose(ZERO_TENANT, credits=replace(ledger(USD), tenant_id="other"))
    assert error.value.field == "tenant_id"


def test_json_carries_the_design_line_shape_in_major_units() -> None:
    document = compose(rating(Tier.LITE, cpu_seconds=100))[0].to_json()
    lines = document["lines"]
    assert isinstance(lines, list)
    assert {"description", "quantity", "unit_price", "amount"} <= lines[-1].keys()
    assert (lines[-1]["unit_price"], lines[-1]["amount"]) == ("99", "99.00")
    assert lines[0]["amount"] == "0.00"  # usage inside the lite quota, shown at zero
    assert document["currency"] == "usd" and document["total"] == "117.81"  # 99.00 + 19% VAT


_TAX_CASES = [
    {"seller": "DE", "buyer": "DE"},
    {"seller": "DE", "buyer": "FR", "vat_id": VALID_FR_VAT_ID},
    {"seller": "DE", "buyer": "FR"},
    {"seller": "US", "buyer": "US", "region": "NY"},
    {"seller": "DE", "buyer": "JP"},
]
_QUANTITY = st.decimals(min_value=0, max_value=10**6, places=3)


@settings(max_examples=150, deadline=None)
@given(
    tier=st.sampled_from([Tier.ZERO, Tier.SHARED, Tier.LITE]),
    quantities=st.fixed_dictionaries(
        {
            m: _QUANTITY
            for m in ("cpu_seconds", "memory_gb_hours", "storage_gb_hours", "network_gb", "executions")
        }
    ),
    currency=st.sampled_from([USD, EUR, JPY, KWD]),
    grant=st.integers(min_value=0, max_value=10**7),
    tax_case=st.sampled_from(_TAX_CASES),
)
def test_totals_add_up_in_the_billing_currency(
    tier: Tier,
    quantities: dict[str, Decimal],
    currency: Currency,
    grant: int,
    tax_case: dict[str, str],
) -> None:
    row = HourlyUsage(MARCH_2025.start.replace(day=5, hour=10), **quantities)
    rated = rate_period([row], TenantPricing("t", tier), load_default_catalog(), MARCH_2025)
    fx = None if currency == USD else RATES.rate(USD, currency, date(2025, 3, 31))
    credits = ledger(currency, *([grant] if grant else []))
    draft, updated = compose(rated, currency=currency, fx=fx, credits=credits, **tax_case)  # type: ignore[arg-type]

    lines = Money.total((line.amount for line in draft.lines), currency)
    assert draft.subtotal_before_credits == lines
    assert draft.total == lines - draft.credits_applied + draft.tax.amount
    assert Money.zero(currency) <= draft.credits_applied <= draft.subtotal_before_credits
    assert Money.zero(currency) <= draft.subtotal
    assert updated.balance(MARCH_2025.end).minor_units == grant - draft.credits_applied.minor_units
    money = [line.amount for line in draft.lines]
    money += [
        draft.subtotal_before_credits,
        draft.credits_applied,
        draft.subtotal,
        draft.tax.amount,
        draft.total,
    ]
    for amount in money:
        assert amount.currency == currency
        assert amount.minor_units == amount.minor_units.to_integral_value()
    document = draft.to_json()
    for key in ("subtotal_before_credits", "credits_applied", "subtotal", "tax", "total"):
        text = document[key]
        assert isinstance(text, str)
        assert len(text.partition(".")[2]) == currency.digits
