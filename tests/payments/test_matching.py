"""Matching bank credits to open invoices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from payments.bank_statements import BankCredit, find_references, read_camt053, read_csv
from payments.matching import MatchKind, OpenInvoice, match_payments
from payments.wire import wire_reference
from pricing.money import Currency

DATA = Path(__file__).parent / "data"
EUR = Currency.of("eur")


def invoice(number: str, due: str, currency: Currency = EUR) -> OpenInvoice:
    return OpenInvoice(f"id-{number}", number, wire_reference(number), Decimal(due), currency)


OPEN = [
    invoice("ENIS-2024-000101", "1190.00"),
    invoice("ENIS-2024-000102", "1750.00"),
    invoice("ENIS-2024-000103", "3000.00"),
    invoice("ENIS-2024-000104", "2014.12"),
]


def credit(entry_id: str, amount: str, remittance: str, day: int = 4, currency: Currency = EUR) -> BankCredit:
    return BankCredit(
        entry_id, Decimal(amount), currency, date(2024, 3, day), remittance, find_references(remittance)
    )


def test_a_camt053_statement_is_classified_exact_partial_over_and_unmatched() -> None:
    credits = read_camt053((DATA / "camt053_sample.xml").read_bytes())

    matches = match_payments(credits, OPEN)

    summary = [
        (m.credit.entry_id, m.kind, m.invoice_id, m.applied, m.overpaid, m.remaining_due) for m in matches
    ]
    assert summary == [
        ("2024030400012345", MatchKind.EXACT, "id-ENIS-2024-000101", Decimal("1190.00"), 0, 0),
        (
            "2024030400012346",
            MatchKind.PARTIAL,
            "id-ENIS-2024-000102",
            Decimal("500.00"),
            0,
            Decimal("1250.00"),
        ),
        (
            "2024030400012348-01",
            MatchKind.OVERPAYMENT,
            "id-ENIS-2024-000103",
            Decimal("3000.00"),
            Decimal("100.00"),
            0,
        ),
        ("2024030400012348-02", MatchKind.EXACT, "id-ENIS-2024-000104", Decimal("2014.12"), 0, 0),
        ("2024030400012351", MatchKind.UNMATCHED, None, 0, 0, 0),
    ]


def test_payments_accumulate_across_statements_in_booking_order() -> None:
    camt = list(read_camt053((DATA / "camt053_sample.xml").read_bytes()))
    csv = list(read_csv((DATA / "statement_sample.csv").read_text()))

    matches = match_payments([*csv, *camt], OPEN)  # given out of order: applied by booking date
    by_entry = {m.credit.entry_id: m for m in matches}

    assert by_entry["2024030400012346"].kind is MatchKind.PARTIAL
    second = by_entry["TX-0003"]  # 1,250.00 on 5 March settles the rest of ENIS-2024-000102
    assert (second.kind, second.applied, second.remaining_due) == (MatchKind.EXACT, Decimal("1250.00"), 0)
    # The same payment of ENIS-2024-000101 exported twice (CSV and camt.053, two entry ids) is
    # money received twice as far as the bank says: the second is an over-payment.
    assert by_entry["TX-0001"].kind is MatchKind.EXACT
    assert (by_entry["2024030400012345"].kind, by_entry["2024030400012345"].overpaid) == (
        MatchKind.OVERPAYMENT,
        Decimal("1190.00"),
    )


def test_a_transfer_in_another_currency_is_not_applied() -> None:
    usd = credit("X1", "2014.12", "payment ENIS-2024-000104", currency=Currency.of("usd"))
    [match] = match_payments([usd], OPEN)
    assert (match.kind, match.invoice_id, match.applied) == (MatchKind.UNMATCHED, "id-ENIS-2024-000104", 0)
    assert match.reason == "paid in USD, invoiced in EUR"


def test_two_partials_then_an_overpayment_of_one_invoice() -> None:
    reference = wire_reference("ENIS-2024-000103")
    credits = [
        credit("A", "1000.01", reference, day=4),
        credit("B", "1999.99", reference, day=5),
        credit("C", "0.50", reference, day=6),
    ]

    first, second, third = match_payments(credits, OPEN)

    assert (first.kind, first.remaining_due) == (MatchKind.PARTIAL, Decimal("1999.99"))
    assert (second.kind, second.applied, second.remaining_due) == (MatchKind.EXACT, Decimal("1999.99"), 0)
    assert (third.kind, third.applied, third.overpaid) == (MatchKind.OVERPAYMENT, 0, Decimal("0.50"))


def test_the_same_bank_entry_twice_is_a_duplicate_applied_once() -> None:
    credits = list(read_camt053((DATA / "camt053_sample.xml").read_bytes()))
    matches = match_payments(credits + credits, OPEN)
    assert [m.kind for m in matches].count(MatchKind.DUPLICATE) == len(credits)
    assert sum(m.applied for m in matches) == Decimal("6704.12")  # 1190 + 500 + 3000 + 2014.12, once


def test_an_invoice_number_matches_only_as_a_whole_word() -> None:
    [match] = match_payments([credit("A", "10.00", "for ENIS-2024-0001040")], OPEN)
    assert match.kind is MatchKind.UNMATCHED


def test_a_reference_beats_an_invoice_number_in_the_same_text() -> None:
    text = f"ENIS-2024-000101 {wire_reference('ENIS-2024-000104')}"
    [match] = match_payments([credit("A", "2014.12", text)], OPEN)
    assert (match.kind, match.invoice_id) == (MatchKind.EXACT, "id-ENIS-2024-000104")
