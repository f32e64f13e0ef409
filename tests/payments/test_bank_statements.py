"""camt.053 and CSV statements to credits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import iso11649

from payments.bank_statements import CsvLayout, InvalidStatement, find_references, read_camt053, read_csv
from payments.wire import wire_reference
from pricing.money import Currency

DATA = Path(__file__).parent / "data"
EUR = Currency.of("eur")


def test_camt053_yields_the_booked_credits_one_per_payer() -> None:
    credits = list(read_camt053((DATA / "camt053_sample.xml").read_bytes()))

    assert [(c.entry_id, c.amount, c.references) for c in credits] == [
        ("2024030400012345", Decimal("1190.00"), ("RF29ENIS2024000101",)),
        ("2024030400012346", Decimal("500.00"), ("RF02ENIS2024000102",)),
        ("2024030400012348-01", Decimal("3100.00"), ("RF72ENIS2024000103",)),
        ("2024030400012348-02", Decimal("2014.12"), ()),
        ("2024030400012351", Decimal("250.00"), ()),
    ]
    assert sum(c.amount for c in credits) == Decimal("7054.12")  # debit, pending and reversal left out
    first, second, *_ = credits
    assert (first.currency, first.booking_date, first.value_date) == (EUR, date(2024, 3, 4), date(2024, 3, 4))
    assert first.debtor == "ACME Robotics AG"
    assert second.remittance == "First instalment RF02 ENIS 2024 0001 02 thank you"
    assert credits[3].remittance == "Invoice ENIS-2024-000104"
    assert credits[3].value_date == date(2024, 3, 5)


CAMT_053_001_08 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>M1</MsgId><CreDtTm>2024-03-05T06:00:00Z</CreDtTm></GrpHdr>
    <Stmt>
      <Id>S1</Id>
      <Acct><Id><IBAN>NL91ABNA0417164300</IBAN></Id></Acct>
      <Ntry>
        <Amt Ccy="JPY">123500</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><DtTm>2024-03-04T10:11:12+09:00</DtTm></BookgDt>
        <BkTxCd/>
        <NtryDtls>
          <TxDtls>
            <Amt Ccy="JPY">100000</Amt>
            <RltdPties><Dbtr><Pty><Nm>Kawasemi KK</Nm></Pty></Dbtr></RltdPties>
            <RmtInf><Ustrd>RF45ENIS2024000104</Ustrd></RmtInf>
          </TxDtls>
          <TxDtls>
            <Amt Ccy="JPY">23500</Amt>
            <RmtInf><Ustrd>no reference</Ustrd></RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
    </Stmt>
  </BkToCstmrStmt>
</Document>"""


def test_camt053_version_08_with_nested_status_and_transaction_amounts() -> None:
    first, second = read_camt053(CAMT_053_001_08)

    assert (first.entry_id, first.amount, first.currency) == ("S1/1/1", Decimal(100000), Currency.of("jpy"))
    assert (first.references, first.debtor, first.booking_date) == (
        ("RF45ENIS2024000104",),
        "Kawasemi KK",
        date(2024, 3, 4),
    )
    assert (second.entry_id, second.amount, second.references) == ("S1/1/2", Decimal(23500), ())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"<Document/>", "not a camt.053"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"/>', "not a camt.053"),
        (b"<not xml", "not well-formed"),
        # Issue 15: a camt.053 document without a statement was read as one with no credits.
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"/>', "no BkToCstmrStmt/Stmt"),
        (
            (
                b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
                b"<GrpHdr><MsgId>1</MsgId></GrpHdr></BkToCstmrStmt></Document>"
            ),
            "no BkToCstmrStmt/Stmt",
        ),
        (CAMT_053_001_08.replace(b'Ccy="JPY">100000', b'Ccy="JPY">-5'), "not positive"),
        (CAMT_053_001_08.replace(b'Ccy="JPY">100000', b'Ccy="XXY">100000'), "unknown currency"),
    ],
)
def test_unreadable_camt053_is_refused_naming_the_problem(document: bytes, message: str) -> None:
    with pytest.raises(InvalidStatement, match=message):
        list(read_camt053(document))


def test_csv_yields_credits_with_decimal_amounts() -> None:
    credits = list(read_csv((DATA / "statement_sample.csv").read_text()))

    assert [(c.entry_id, c.amount, c.currency.code, c.references) for c in credits] == [
        ("TX-0001", Decimal("1190.00"), "eur", ("RF29ENIS2024000101",)),
        ("TX-0003", Decimal("1250.00"), "eur", ("RF02ENIS2024000102",)),
        ("TX-0005", Decimal("75.10"), "usd", ()),
    ]
    assert credits[1].booking_date == date(2024, 3, 5) and credits[1].debtor == "Bluefin Data S.L."


@pytest.mark.parametrize("text", ["", "{}", "booking_date,amount\n"])
def test_a_csv_without_the_layouts_header_is_refused_even_without_rows(text: str) -> None:
    with pytest.raises(InvalidStatement, match="line 1: header without"):
        list(read_csv(text))


def test_csv_with_a_banks_own_layout_and_no_entry_ids() -> None:
    export = (
        "Buchungstag;Betrag;Waehrung;Verwendungszweck\n"
        "04.03.2024;1.190,00;EUR;RF29 ENIS 2024 0001 01\n"
        "04.03.2024;1.190,00;EUR;RF29 ENIS 2024 0001 01\n"
        "05.03.2024;-3,50;EUR;Gebuehr\n"
    )
    layout = CsvLayout(
        entry_id=None,
        booking_date="Buchungstag",
        value_date=None,
        amount="Betrag",
        currency="Waehrung",
        remittance="Verwendungszweck",
        debtor=None,
        date_format="%d.%m.%Y",
        decimal_separator=",",
        delimiter=";",
    )
    first, second = read_csv(export, layout)
    again = list(read_csv(export, layout))

    assert first.amount == second.amount == Decimal("1190.00")
    assert first.entry_id != second.entry_id  # two identical transfers are two payments
    assert [c.entry_id for c in again] == [first.entry_id, second.entry_id]  # stable on re-import


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("TX-9,2024-03-04,,abc,EUR,,", "not a decimal"),
        ("TX-9,04/03/2024,,1.00,EUR,,", "does not match"),
        ("TX-9,2024-03-04,,1.00,,,", "missing Currency"),
    ],
)
def test_bad_csv_rows_are_refused_with_their_line(row: str, message: str) -> None:
    header = "Entry ID,Booking Date,Value Date,Amount,Currency,Counterparty,Remittance Information\n"
    with pytest.raises(InvalidStatement, match=f"line 2: .*{message}"):
        list(read_csv(header + row + "\n"))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("RF18 5390 0754 7034", ("RF18539007547034",)),
        ("Payment /RFB/RF18539007547034/ March", ("RF18539007547034",)),
        ("rf29enis2024000101", ("RF29ENIS2024000101",)),
        ("RF17 5390 0754 7034", ()),  # a mistyped check digit
        ("Invoice ENIS-2024-000101", ()),
        ("RF", ()),
    ],
)
def test_references_are_found_by_their_checksum(text: str, found: tuple[str, ...]) -> None:
    assert find_references(text) == found


@given(
    number=st.from_regex(r"[A-Z]{2,4}-20[0-9]{2}-[0-9]{6}", fullmatch=True),
    before=st.sampled_from(["", "Invoice payment ", "Ref: ", "/RFB/"]),
    after=st.sampled_from(["", " thanks", " EUR 100.00", "/"]),
)
def test_a_printed_reference_is_found_in_any_remittance_text(number: str, before: str, after: str) -> None:
    reference = wire_reference(number)
    assert reference in find_references(before + iso11649.format(reference) + after)
