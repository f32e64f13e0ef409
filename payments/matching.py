"""Match bank credits to open invoices: exact, partial, over-payment, or unmatched.

Pure. A credit finds its invoice by an RF reference (`BankCredit.references`, checksummed, so a
hit is trustworthy), else by the invoice number written as a whole word in the remittance text
(payers often type the number they see on the PDF). Currencies must agree: a EUR transfer does
not settle a USD invoice (finance converts and matches it by hand).

Credits are applied in booking order, each to what is still due after the earlier ones, so two
partial transfers can settle an invoice and a third is an over-payment. `overpaid` is the amount
beyond what was due, for the caller to book as a credit on the tenant's ledger. The same bank
entry twice (a statement imported twice, or overlapping statements) is reported as `duplicate`
and applied once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from payments.bank_statements import BankCredit
from pricing.money import ARITHMETIC, Currency


class MatchKind(StrEnum):
    EXACT = "exact"
    PARTIAL = "partial"
    OVERPAYMENT = "overpayment"
    UNMATCHED = "unmatched"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    invoice_id: str
    invoice_number: str
    reference: str  # its RF creditor reference (`invoicing.references.wire_reference`)
    amount_due: Decimal
    currency: Currency


@dataclass(frozen=True, slots=True)
class PaymentMatch:
    """What one credit does: `applied` to the invoice, `overpaid` beyond it, `remaining_due` after."""

    credit: BankCredit
    kind: MatchKind
    invoice_id: str | None = None
    applied: Decimal = Decimal(0)
    overpaid: Decimal = Decimal(0)
    remaining_due: Decimal = Decimal(0)
    reason: str | None = None


def match_payments(credits: Iterable[BankCredit], open_invoices: Iterable[OpenInvoice]) -> list[PaymentMatch]:
    invoices = list(open_invoices)
    by_reference = {invoice.reference: invoice for invoice in invoices}
    due = {invoice.invoice_id: invoice.amount_due for invoice in invoices}
    seen: set[str] = set()
    matches = []
    for credit in sorted(credits, key=lambda credit: credit.booking_date):  # stable: keeps statement order
        if credit.entry_id in seen:
            matches.append(PaymentMatch(credit, MatchKind.DUPLICATE, reason="bank entry already matched"))
            continue
        seen.add(credit.entry_id)
        invoice = _find_invoice(credit, by_reference, invoices)
        if invoice is None:
            matches.append(PaymentMatch(credit, MatchKind.UNMATCHED, reason="no open invoice referenced"))
        elif invoice.currency != credit.currency:
            reason = f"paid in {credit.currency.code.upper()}, invoiced in {invoice.currency.code.upper()}"
            matches.append(PaymentMatch(credit, MatchKind.UNMATCHED, invoice.invoice_id, reason=reason))
        else:
            match = _apply(credit, invoice, due[invoice.invoice_id])
            due[invoice.invoice_id] = match.remaining_due
            matches.append(match)
    return matches


def _find_invoice(
    credit: BankCredit, by_reference: dict[str, OpenInvoice], invoices: list[OpenInvoice]
) -> OpenInvoice | None:
    for reference in credit.references:
        if reference in by_reference:
            return by_reference[reference]
    text = credit.remittance.upper()
    for invoice in invoices:
        # A whole word only: ENIS-2024-000012 must not match inside ENIS-2024-0000123.
        if re.search(rf"(?<![0-9A-Z]){re.escape(invoice.invoice_number.upper())}(?![0-9A-Z])", text):
            return invoice
    return None


def _apply(credit: BankCredit, invoice: OpenInvoice, due: Decimal) -> PaymentMatch:
    applied = min(credit.amount, due)
    overpaid = ARITHMETIC.subtract(credit.amount, applied)
    remaining = ARITHMETIC.subtract(due, applied)
    if overpaid > 0:
        kind = MatchKind.OVERPAYMENT
    else:
        kind = MatchKind.EXACT if remaining == 0 else MatchKind.PARTIAL
    return PaymentMatch(credit, kind, invoice.invoice_id, applied, overpaid, remaining)
