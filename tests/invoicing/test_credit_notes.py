"""Credit-note arithmetic: tax at the invoice's rate, never more than the invoice, and the last
note takes exactly the tax left so rounding leaves nothing behind."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicing.credit_notes import Creditable, credit_note_amounts
from pricing.errors import InvalidField
from pricing.money import Currency, Money

EUR, JPY = Currency.of("eur"), Currency.of("jpy")


def money(text: str, currency: Currency = EUR) -> Money:
    return Money.from_major(Decimal(text), currency)


def invoice(subtotal: str, tax: str, rate: str, currency: Currency = EUR) -> Creditable:
    return Creditable(
        money(subtotal, currency),
        money(tax, currency),
        Decimal(rate),
        Money.zero(currency),
        Money.zero(currency),
    )


def test_a_partial_note_is_taxed_at_the_invoice_rate():
    note = credit_note_amounts(invoice("100.00", "19.00", "19"), money("10.05"))
    assert (note.subtotal, note.tax, note.total) == (money("10.05"), money("1.91"), money("11.96"))


def test_the_whole_remainder_is_the_default_and_takes_the_tax_left():
    first = invoice("100.00", "19.00", "19")
    credited = Creditable(first.subtotal, first.tax, first.tax_rate, money("10.05"), money("1.91"))
    note = credit_note_amounts(credited, None)
    assert (note.subtotal, note.tax) == (money("89.95"), money("17.09"))


@pytest.mark.parametrize(
    "amount, message",
    [("0.001", "whole minor units"), ("100.01", "exceeds the 100.00"), ("-1", "must be positive")],
)
def test_amounts_that_are_refused_name_the_field(amount, message):
    with pytest.raises(InvalidField, match=message) as refused:
        credit_note_amounts(invoice("100.00", "19.00", "19"), money(amount))
    assert refused.value.field == "amount"


def test_a_note_in_another_currency_is_refused():
    with pytest.raises(InvalidField, match="EUR"):
        credit_note_amounts(invoice("100.00", "19.00", "19"), money("1", JPY))


@given(
    subtotal=st.integers(min_value=1, max_value=10**9),
    rate=st.sampled_from(["0", "7", "19", "21", "25.5"]),
    cuts=st.lists(st.integers(min_value=1, max_value=10**9), max_size=6),
)
def test_notes_never_take_back_more_than_the_invoice_and_the_last_takes_exactly_the_rest(
    subtotal, rate, cuts
):
    net = Money(Decimal(subtotal), EUR)
    tax = net.times(Decimal(rate) / 100).rounded()
    state = Creditable(net, tax, Decimal(rate), Money.zero(EUR), Money.zero(EUR))
    for cut in cuts:
        wanted = Money(Decimal(min(cut, state.remaining.minor_units)), EUR)
        if wanted.is_zero():
            break
        note = credit_note_amounts(state, wanted)
        state = Creditable(
            net, tax, state.tax_rate, state.credited_subtotal + note.subtotal, state.credited_tax + note.tax
        )
        assert state.credited_tax <= tax
    if not state.remaining.is_zero():
        last = credit_note_amounts(state, None)
        state = Creditable(
            net, tax, state.tax_rate, state.credited_subtotal + last.subtotal, state.credited_tax + last.tax
        )
    assert (state.credited_subtotal, state.credited_tax) == (net, tax)
