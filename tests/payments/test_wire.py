"""Wire references, instructions and the wire gateway."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from payments.errors import OperationNotSupported
from payments.gateway import ChargeRequest, PaymentStatus, RefundRequest
from payments.wire import BankAccount, WireGateway, payment_instructions, wire_reference
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


def test_a_wire_charge_is_pending_with_instructions_and_the_same_reference_on_a_retry() -> None:
    gateway = WireGateway(ACCOUNT)

    first = gateway.charge(request("ENIS-2024-000102", "1750.00"))
    again = gateway.charge(request("ENIS-2024-000102", "1750.00"))  # a retry: same reference

    assert (first.status, first.transaction_id) == (PaymentStatus.PENDING, "RF02ENIS2024000102")
    assert again.transaction_id == first.transaction_id
    assert "RF02 ENIS 2024 0001 02" in (first.instructions or "")
    assert "Amount:       1750.00 EUR" in (first.instructions or "")


def test_status_and_refunds_are_not_the_gateways_to_give() -> None:
    gateway = WireGateway(ACCOUNT)
    with pytest.raises(OperationNotSupported):
        gateway.status("RF29ENIS2024000101")
    with pytest.raises(OperationNotSupported):
        gateway.refund(RefundRequest("RF29ENIS2024000101", EUR, "k"))
