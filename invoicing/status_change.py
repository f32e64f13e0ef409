"""Moving an invoice along its lifecycle after finalization: void, uncollectible, paid."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra import invoice_store
from invoicing.lifecycle import InvoiceStatus, sources
from invoicing.records import Invoice
from notifications import emit

InvalidTransition = invoice_store.InvalidTransition
InvoiceNotFound = invoice_store.InvoiceNotFound


async def move_invoice(
    conn: AsyncConnection, invoice_id: uuid.UUID, wanted: InvoiceStatus, *, actor: str
) -> None:
    """Within the caller's transaction (a payment settling, a statement matched)."""
    if await invoice_store.set_status(conn, invoice_id, wanted, allowed_from=sources(wanted), actor=actor):
        await emit.invoice_moved(conn, invoice_id, wanted)  # invoice.paid / invoice.voided, same commit


async def change_status(
    engine: AsyncEngine, invoice_id: uuid.UUID, wanted: InvoiceStatus, *, actor: str
) -> Invoice:
    """The use case behind POST /invoices/{id}/void|mark-uncollectible|mark-paid: the invoice after
    the move. Raises InvoiceNotFound, InvalidTransition."""
    async with engine.begin() as conn:
        await move_invoice(conn, invoice_id, wanted, actor=actor)  # raises InvoiceNotFound first
        return Invoice.of(await invoice_store.get(conn, invoice_id))
