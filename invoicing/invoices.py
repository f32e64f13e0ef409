"""Reading invoices and their credit notes, as records: one invoice, a tenant's invoices, an
invoice's credit notes. Making, finalizing and rendering them is `Invoicer`'s (invoicing/service.py),
crediting `corrections.py`'s, moving them `status_change.py`'s; each returns the records of
invoicing/records.py, and raises the errors named here."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import credit_note_store, invoice_store
from invoicing.records import CreditNote, Invoice
from invoicing.service import TenantCheck

__all__ = [
    "CreditNoteNotFound",
    "InvoiceNotFound",
    "credit_notes_of",
    "find_invoice",
    "tenant_invoices",
]

# The stores raise them; named here so that the routes catch them without importing a store.
InvoiceNotFound = invoice_store.InvoiceNotFound
CreditNoteNotFound = credit_note_store.CreditNoteNotFound


async def find_invoice(engine: AsyncEngine, invoice_id: uuid.UUID) -> Invoice | None:
    """The invoice, or None when there is none with that id."""
    async with engine.connect() as conn:
        row = await invoice_store.find(conn, invoice_id)
    return None if row is None else Invoice.of(row)


async def tenant_invoices(engine: AsyncEngine, tenant_id: str, limit: int) -> tuple[Invoice, ...]:
    """The tenant's latest `limit` invoices, the latest period first."""
    async with engine.connect() as conn:
        rows = await invoice_store.of_tenant(conn, tenant_id, limit)
    return tuple(Invoice.of(row) for row in rows)


async def credit_notes_of(
    engine: AsyncEngine, invoice_id: uuid.UUID, check_tenant: TenantCheck
) -> tuple[CreditNote, ...]:
    """The invoice's credit notes, the first issued first. Raises InvoiceNotFound, and what
    `check_tenant` raises (before any note is read)."""
    async with engine.connect() as conn:
        invoice = await invoice_store.find(conn, invoice_id)
        if invoice is None:
            raise InvoiceNotFound(str(invoice_id))
        check_tenant(invoice.tenant_id)
        notes = await credit_note_store.credit_notes_of(conn, invoice_id)
    return tuple(CreditNote.of(note) for note in notes)
