"""Incoming bank transfers from a statement: ISO 20022 camt.053 (XML) or a bank's CSV export.

Pure functions: bytes or text in, `BankCredit`s out (credits only: debits, reversals and
entries not yet booked are skipped). Each credit carries the RF creditor references (ISO 11649)
found in its remittance information, best first: the structured `CdtrRefInf/Ref` of camt.053,
then any valid reference written into the free text, where banks print it in groups of four
(`RF18 5390 0754 7034`). The checksum is what tells a reference from nearby words.

`entry_id` is the bank's own id for the entry (camt.053 `AcctSvcrRef`), so importing the same
statement twice can be made harmless by the caller (a unique constraint on it).

camt.053 is read with `xml.etree` and the document's own namespace, so versions .001.02
(`<Sts>BOOK</Sts>`, `AmtDtls/TxAmt`) and .001.08+ (`<Sts><Cd>BOOK</Cd></Sts>`, `TxDtls/Amt`)
both work. Python's expat refuses entity-expansion bombs (amplification limits, expat >= 2.4).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from stdnum import iso11649

from pricing.errors import InvalidField
from pricing.money import Currency

_CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053."
_MAX_REFERENCE_BODY = 21  # ISO 11649: RF, two check digits, up to 21 characters


class InvalidStatement(ValueError):
    """A statement that cannot be read; `where` says which entry or row."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, slots=True)
class BankCredit:
    """Money received, as the bank booked it."""

    entry_id: str
    amount: Decimal  # major units, positive
    currency: Currency
    booking_date: date
    remittance: str
    references: tuple[str, ...] = ()  # valid RF references, most trustworthy first
    debtor: str | None = None
    value_date: date | None = None

    @property
    def reference(self) -> str | None:
        return self.references[0] if self.references else None


def find_references(text: str) -> tuple[str, ...]:
    """Every valid RF reference in free text, longest first (`"… RF18 5390 0754 7034 …"`).

    Candidates are built from whole alphanumeric tokens only, so a reference never swallows half
    a word; a candidate counts only if its ISO 7064 check digits hold.
    """
    tokens = re.findall(r"[0-9A-Z]+", text.upper())
    found: list[str] = []
    for start, token in enumerate(tokens):
        if not re.fullmatch(r"RF\d{2}[0-9A-Z]*", token):
            continue
        candidate = token
        for following in [*tokens[start + 1 :], None]:
            if 4 < len(candidate) <= 4 + _MAX_REFERENCE_BODY and iso11649.is_valid(candidate):
                found.append(candidate)
            if following is None or len(candidate) > 4 + _MAX_REFERENCE_BODY:
                break
            candidate += following
    return tuple(dict.fromkeys(sorted(found, key=len, reverse=True)))


def _references(structured: Iterable[str], text: str) -> tuple[str, ...]:
    exact = [iso11649.compact(ref) for ref in structured if iso11649.is_valid(ref)]
    return tuple(dict.fromkeys([*exact, *find_references(text)]))


# -- camt.053 --------------------------------------------------------------------------------


class _Camt:
    """Namespace-aware lookups in one camt.053 document."""

    def __init__(self, root: ET.Element) -> None:
        namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
        if not namespace.startswith(_CAMT053):
            raise InvalidStatement("Document", f"not a camt.053 document (namespace {namespace!r})")
        self.ns = {"c": namespace}

    def find(self, element: ET.Element, path: str) -> ET.Element | None:
        return element.find(self._qualified(path), self.ns)

    def findall(self, element: ET.Element, path: str) -> list[ET.Element]:
        return element.findall(self._qualified(path), self.ns)

    def text(self, element: ET.Element, *paths: str) -> str | None:
        """The stripped text of the first path that has some."""
        for path in paths:
            found = self.find(element, path)
            if found is not None and found.text and found.text.strip():
                return found.text.strip()
        return None

    @staticmethod
    def _qualified(path: str) -> str:
        return "/".join(f"c:{step}" for step in path.split("/"))


def read_camt053(document: bytes | str) -> Iterator[BankCredit]:
    """The booked credits of every statement in a camt.053 (`BkToCstmrStmt`) document."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise InvalidStatement("Document", f"not well-formed XML: {error}") from None
    camt = _Camt(root)
    statements = camt.findall(root, "BkToCstmrStmt/Stmt")
    if not statements:
        # Not a statement at all (another camt.053 message, or a truncated file): refused, never
        # read as a statement with no credits (issue 15).
        raise InvalidStatement("Document", "not a camt.053 statement: no BkToCstmrStmt/Stmt")
    for statement in statements:
        statement_id = camt.text(statement, "Id") or "statement"
        for number, entry in enumerate(camt.findall(statement, "Ntry"), start=1):
            if _is_booked_credit(camt, entry):
                yield from _entry_credits(
                    camt, entry, camt.text(entry, "AcctSvcrRef") or f"{statement_id}/{number}"
                )


def _is_booked_credit(camt: _Camt, entry: ET.Element) -> bool:
    status = camt.text(entry, "Sts/Cd", "Sts")
    # A reversed credit (RvslInd) is the bank taking money back, not a payment to match.
    return (
        camt.text(entry, "CdtDbtInd") == "CRDT"
        and status == "BOOK"
        and (camt.text(entry, "RvslInd") or "false") != "true"
    )


def _entry_credits(camt: _Camt, entry: ET.Element, entry_id: str) -> Iterator[BankCredit]:
    """One credit per transaction of the entry: a batch booking holds several payers."""
    booking = _camt_date(camt, entry, "BookgDt", entry_id)
    value = _camt_date(camt, entry, "ValDt", entry_id) if camt.find(entry, "ValDt") is not None else None
    details = camt.findall(entry, "NtryDtls/TxDtls") or [entry]
    for number, transaction in enumerate(details, start=1):
        single = len(details) == 1
        amount_element = _transaction_amount(camt, entry, transaction, single)
        if amount_element is None:
            raise InvalidStatement(entry_id, "entry without Amt")
        credit_id = (
            entry_id if single else camt.text(transaction, "Refs/AcctSvcrRef") or f"{entry_id}/{number}"
        )
        # The entry's own note (AddtlNtryInf) belongs to every transaction only when there is one.
        notes = [
            *camt.findall(transaction, "RmtInf/Ustrd"),
            *(camt.findall(entry, "AddtlNtryInf") if single else []),
        ]
        text = " ".join(element.text.strip() for element in notes if element.text and element.text.strip())
        structured = [
            element.text or "" for element in camt.findall(transaction, "RmtInf/Strd/CdtrRefInf/Ref")
        ]
        yield BankCredit(
            entry_id=credit_id,
            amount=_amount(amount_element.text or "", credit_id),
            currency=_currency(amount_element.get("Ccy") or "", credit_id),
            booking_date=booking,
            value_date=value,
            remittance=text,
            references=_references(structured, text),
            debtor=camt.text(transaction, "RltdPties/Dbtr/Pty/Nm", "RltdPties/Dbtr/Nm"),
        )


def _transaction_amount(
    camt: _Camt, entry: ET.Element, transaction: ET.Element, single: bool
) -> ET.Element | None:
    """The booked amount: the entry's for a single transaction, else each transaction's own."""
    if single:
        return camt.find(entry, "Amt")
    found = camt.find(transaction, "AmtDtls/TxAmt/Amt")  # camt.053.001.02
    return found if found is not None else camt.find(transaction, "Amt")  # .001.08 and later


def _camt_date(camt: _Camt, entry: ET.Element, name: str, entry_id: str) -> date:
    text = camt.text(entry, f"{name}/Dt", f"{name}/DtTm")
    if text is None:
        raise InvalidStatement(entry_id, f"entry without {name}")
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise InvalidStatement(entry_id, f"{name} {text!r} is not a date") from None


def _amount(text: str, where: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise InvalidStatement(where, f"amount {text!r} is not a decimal") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidStatement(where, f"amount {text!r} is not positive")
    return amount


def _currency(code: str, where: str) -> Currency:
    try:
        return Currency.of(code)
    except InvalidField:
        raise InvalidStatement(where, f"unknown currency {code!r}") from None


# -- CSV -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """Which columns of a bank's CSV export hold what. Amounts are signed; credits are > 0.

    `entry_id=None` for banks that export no id: each row then gets one derived from its
    content and its occurrence in the file, stable across re-imports of the same file.
    """

    entry_id: str | None = "Entry ID"
    booking_date: str = "Booking Date"
    value_date: str | None = "Value Date"
    amount: str = "Amount"
    currency: str = "Currency"
    remittance: str = "Remittance Information"
    debtor: str | None = "Counterparty"
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    delimiter: str = ","


def read_csv(text: str, layout: CsvLayout = CsvLayout()) -> Iterator[BankCredit]:
    """The credits of a CSV bank export (header row first)."""
    reader = csv.DictReader(io.StringIO(text), delimiter=layout.delimiter)
    # The header first: a file without the layout's columns (or without a header) is not a
    # statement, even when it has no rows to complain about (found by tests/test_fuzz_api.py).
    required = (layout.booking_date, layout.amount, layout.currency)
    absent = [name for name in required if name not in (reader.fieldnames or ())]
    if absent:
        raise InvalidStatement("line 1", f"header without {', '.join(absent)}")
    seen: Counter[str] = Counter()
    for line, row in enumerate(reader, start=2):
        where = f"line {line}"
        missing = [
            name for name in (layout.booking_date, layout.amount, layout.currency) if not row.get(name)
        ]
        if missing:
            raise InvalidStatement(where, f"missing {', '.join(missing)}")
        amount = _csv_amount(row[layout.amount], layout.decimal_separator, where)
        if amount <= 0:
            continue  # a debit or a zero line
        remittance = (row.get(layout.remittance) or "").strip()
        yield BankCredit(
            entry_id=_row_id(row, layout, seen),
            amount=amount,
            currency=_currency(row[layout.currency], where),
            booking_date=_csv_date(row[layout.booking_date], layout.date_format, where),
            value_date=(
                _csv_date(row[layout.value_date], layout.date_format, where)
                if layout.value_date and row.get(layout.value_date)
                else None
            ),
            remittance=remittance,
            references=find_references(remittance),
            debtor=(row.get(layout.debtor) or None) if layout.debtor else None,
        )


def _row_id(row: dict[str, str], layout: CsvLayout, seen: Counter[str]) -> str:
    if layout.entry_id and row.get(layout.entry_id):
        return row[layout.entry_id].strip()
    digest = hashlib.sha256("\x1f".join(f"{k}={v}" for k, v in sorted(row.items())).encode()).hexdigest()[:20]
    seen[digest] += 1  # two identical transfers on one day are two payments
    return f"csv:{digest}:{seen[digest]}"


def _csv_amount(text: str, decimal_separator: str, where: str) -> Decimal:
    cleaned = re.sub(r"[\s\u00a0\u202f']", "", text)
    grouping = "," if decimal_separator == "." else "."
    cleaned = cleaned.replace(grouping, "").replace(decimal_separator, ".")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidStatement(where, f"amount {text!r} is not a decimal") from None
    if not amount.is_finite():
        raise InvalidStatement(where, f"amount {text!r} is not finite")
    return amount


def _csv_date(text: str, date_format: str, where: str) -> date:
    try:
        return datetime.strptime(text.strip(), date_format).date()
    except ValueError:
        raise InvalidStatement(where, f"date {text!r} does not match {date_format}") from None
