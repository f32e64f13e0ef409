"""Corrections to finalized invoices: credit notes (the arithmetic is invoicing/credit_notes.py).
A finalized invoice itself never changes; a note references it and takes back part or all of it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import audit_store, credit_note_store
from infra.invoice_store import InvoiceNotFound
from invoicing import lifecycle
from invoicing.credit_notes import Creditable, credit_note_amounts
from invoicing.records import CreditNote
from notifications import emit
from pricing.money import Currency, Money, plain

CREDITABLE = tuple(sorted(lifecycle.CREDITABLE))


class NotCreditable(ValueError):
    """The invoice is a draft (change it instead) or void (nothing is owed)."""


async def issue_credit_note(
    engine: AsyncEngine, invoice_id: uuid.UUID, amount: Decimal | None, reason: str, actor: str
) -> CreditNote:
    """A new credit note for `amount` net of tax (None: all that is not yet credited). Raises
    InvoiceNotFound, NotCreditable and InvalidField("amount", ...)."""
    async with engine.begin() as conn:
        invoice: Row[Any] | None = await credit_note_store.lock_invoice(conn, invoice_id)
        if invoice is None:
            raise InvoiceNotFound(str(invoice_id))
        if invoice.status not in CREDITABLE:
            raise NotCreditable(
                f"invoice {invoice_id} is {invoice.status}; only {', '.join(CREDITABLE)} ones"
            )
        currency = Currency.of(invoice.currency)
        credited_subtotal, credited_tax = await credit_note_store.credited(conn, invoice_id)
        creditable = Creditable(
            subtotal=Money.from_major(invoice.subtotal, currency),
            tax=Money.from_major(invoice.tax, currency),
            tax_rate=Decimal(invoice.document.get("tax_rate", "0")),
            credited_subtotal=Money.from_major(credited_subtotal, currency),
            credited_tax=Money.from_major(credited_tax, currency),
        )
        wanted = None if amount is None else Money.from_major(amount, currency)
        note = credit_note_amounts(creditable, wanted)
        document = {
            "invoice_number": invoice.number,
            "tax_rate": plain(creditable.tax_rate),
            "tax_note": invoice.document.get("tax_note"),
            "reverse_charge": invoice.document.get("reverse_charge", False),
        }
        stored: Row[Any] = await credit_note_store.insert_credit_note(
            conn,
            invoice,
            subtotal=note.subtotal.major_units(),
            tax=note.tax.major_units(),
            reason=reason,
            document=document,
            created_by=actor,
        )
        await emit.credit_note_created(conn, invoice, stored)  # webhooks, same commit
        await audit_store.record(
            conn,
            actor,
            "credit_note.issued",
            "invoice",
            invoice_id,
            invoice.tenant_id,
            _credited(invoice, creditable.credited_subtotal, creditable.credited_tax),
            {
                **_credited(
                    invoice, creditable.credited_subtotal + note.subtotal, creditable.credited_tax + note.tax
                ),
                "credit_note_id": stored.credit_note_id,
                "credit_note": stored.number,
                "subtotal": note.subtotal,
                "tax": note.tax,
                "total": note.total,
                "reason": reason,
            },
        )
        return CreditNote.of(stored)


def _credited(invoice: Row[Any], subtotal: Money, tax: Money) -> dict[str, object]:
    """What the invoice's credit notes have taken back, and what it still charges net."""
    remaining = Money.from_major(invoice.subtotal, subtotal.currency) - subtotal
    return {"status": invoice.status, "credited": subtotal + tax, "remaining_subtotal": remaining}
