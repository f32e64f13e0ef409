"""Wire references, instructions and the wire gateway."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from payments.bank_statements import read_camt053
from payments.errors import IdempotencyConflict, OperationNotSupported, PaymentNotFound
from payments.gateway import ChargeRequest, PaymentStatus, RefundRequest
from payments.matching import match_payments
from payments.wire import BankAccount, InMemoryWireLedger, WireGateway, payment_instructions, wire_reference
from pricing.money import Currency

EUR = Currency.of("eur")
ACCOUNT = BankAccount("ENIS GmbH", "DE89 3704 0044 0532 0130 00", "COBADEFFXXX", "Commerzbank")
DATA = Path(__file__).parent / "data"


def test_the_reference_is_an_iso_11649_creditor_reference_of_the_invoice_number() -> None:
    assert wire_reference("ENIS-2024-000101") == "RF29ENIS2024000101"
    assert iso11649.is_valid("RF29ENIS2024000101")
    assert wire_reference("enis-2024-000101") == wire_reference("ENIS-2024-000101")


def test_a_number_too_long_for_a_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        wire_reference("VERYLONGISSUER-2024-000001")


@given(numbers=st.sets(st.integers(min_value=1, max_value=999_999), min_size=2, max_size=50))
def test_references_are_valid_and_unique_per_invoice_number(numbers: set[int]) -> None:
    references = {wire_reference(f"ENIS-2024-{n:06d}") for n in numbers}
    assert len(references) == len(numbers)
    assert all(iso11649.is_valid(reference) for reference in references)


@given(
    number=st.integers(min_value=1, max_value=999_999),
    position=st.integers(min_value=8, max_value=17),  # the digits of RFccENIS2024nnnnnn
    delta=st.integers(min_value=1, max_value=9),
)
def test_a_mistyped_digit_fails_the_checksum(number: int, position: int, delta: int) -> None:
    # ISO 7064 mod 97-10 catches every single-digit substitution (10^k * d is never 0 mod 97);
    # a digit typed as a letter changes the length of the expansion and is not guaranteed.
    reference = wire_reference(f"ENIS-2024-{number:06d}")
    wrong = str((int(reference[position]) + delta) % 10)
    assert not iso11649.is_valid(reference[:position] + wrong + reference[position + 1 :])


def test_instructions_name_amount_account_and_formatted_reference() -> None:
    text = payment_instructions(ACCOUNT, "ENIS-2024-000101", Decimal(1190), EUR, "RF29ENIS2024000101")
    assert "Amount:       1190.00 EUR" in text
    assert "IBAN:         DE89 3704 0044 0532 0130 00" in text
    assert "BIC:          COBADEFFXXX" in text
    assert "Reference:    RF29 ENIS 2024 0001 01" in text


def test_a_bank_account_with_a_bad_iban_is_refused() -> None:
    with pytest.raises(ValueError):
        BankAccount("ENIS GmbH", "DE89 3704 0044 0532 0130 01", "COBADEFFXXX", "Commerzbank")


def request(number: str, amount: str) -> ChargeRequest:
    return ChargeRequest(f"id-{number}", number, Decimal(amount), EUR, uuid.uuid4().hex)


def test_a_wire_charge_is_pending_until_a_statement_settles_it() -> None:
    ledger = InMemoryWireLedger()
    gateway = WireGateway(ACCOUNT, ledger)

    first = gateway.charge(request("ENIS-2024-000102", "1750.00"))
    again = gateway.charge(request("ENIS-2024-000102", "1750.00"))  # a retry: same reference

    assert (first.status, first.transaction_id) == (PaymentStatus.PENDING, "RF02ENIS2024000102")
    assert again.transaction_id == first.transaction_id
    assert "RF02 ENIS 2024 0001 02" in (first.instructions or "")

    statement = read_camt053((DATA / "camt053_sample.xml").read_bytes())
    for match in match_payments(statement, ledger.open_invoices()):
        ledger.record_payment(match)
    assert gateway.status(first.transaction_id).status is PaymentStatus.PENDING  # 500 of 1750 paid
    assert [(i.invoice_number, i.amount_due) for i in ledger.open_invoices()] == [
        ("ENIS-2024-000102", Decimal("1250.00"))
    ]


def test_a_wire_charge_settled_in_full_is_completed() -> None:
    ledger = InMemoryWireLedger()
    gateway = WireGateway(ACCOUNT, ledger)
    charged = gateway.charge(request("ENIS-2024-000103", "3000.00"))

    matches = match_payments(read_camt053((DATA / "camt053_sample.xml").read_bytes()), ledger.open_invoices())
    for match in matches:
        ledger.record_payment(match)

    assert gateway.status(charged.transaction_id).status is PaymentStatus.COMPLETED
    assert ledger.received(charged.transaction_id) == Decimal("3000.00")  # the 100.00 extra is a credit
    assert ledger.open_invoices() == []


def test_the_same_invoice_for_another_amount_is_a_conflict() -> None:
    gateway = WireGateway(ACCOUNT, InMemoryWireLedger())
    gateway.charge(request("ENIS-2024-000104", "10.00"))
    with pytest.raises(IdempotencyConflict):
        gateway.charge(request("ENIS-2024-000104", "11.00"))


def test_unknown_references_and_refunds() -> None:
    gateway = WireGateway(ACCOUNT, InMemoryWireLedger())
    with pytest.raises(PaymentNotFound):
        gateway.status("RF29ENIS2024000101")
    with pytest.raises(OperationNotSupported):
        gateway.refund(RefundRequest("RF29ENIS2024000101", EUR, "k"))
