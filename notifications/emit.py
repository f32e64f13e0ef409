"""The events the billing use cases emit, one call each inside the transaction that makes the
change (so the event commits with it or not at all): what an invoice, a credit note or a payment
tells the tenant's systems. Each reads what it reports from the rows the caller just wrote, on the
caller's connection, and records it through `outbox.record`.

Amounts are decimal strings in major units, as the API renders them (design.md §4).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import invoice_store
from notifications import outbox
from notifications.events import EventType

INVOICE_MOVES = {"paid": EventType.INVOICE_PAID, "void": EventType.INVOICE_VOIDED}
PAYMENT_MOVES = {
    "completed": (EventType.PAYMENT_SUCCEEDED,),
    "failed": (EventType.PAYMENT_FAILED, EventType.INVOICE_PAYMENT_FAILED),
    "partially_refunded": (EventType.PAYMENT_REFUNDED,),
    "refunded": (EventType.PAYMENT_REFUNDED,),
}


async def invoices_finalized(conn: AsyncConnection, invoice_ids: Sequence[uuid.UUID]) -> None:
    """`invoice.finalized` for each invoice just numbered in this transaction."""
    rows = await invoice_store.heads(conn, list(invoice_ids))
    events = [
        outbox.Event(EventType.INVOICE_FINALIZED, rows[i].tenant_id, _invoice(rows[i])) for i in invoice_ids
    ]
    await outbox.record_many(conn, events)


async def invoice_moved(conn: AsyncConnection, invoice_id: uuid.UUID, status: str) -> None:
    """`invoice.paid` or `invoice.voided` for an invoice just moved there (other moves say nothing)."""
    event_type = INVOICE_MOVES.get(str(status))
    if event_type is None:
        return
    row = (await invoice_store.heads(conn, [invoice_id]))[invoice_id]
    await outbox.record(conn, event_type, row.tenant_id, _invoice(row))


async def credit_note_created(conn: AsyncConnection, invoice: Any, note: Any) -> None:
    """`credit_note.created` for a note just written of `invoice`."""
    data = {
        "credit_note_id": note.credit_note_id,
        "number": note.number,
        "invoice_id": invoice.invoice_id,
        "invoice_number": invoice.number,
        "currency": note.currency,
        "subtotal": _major(note.subtotal),
        "tax": _major(note.tax),
        "total": _major(note.total),
        "reason": note.reason,
    }
    await outbox.record(conn, EventType.CREDIT_NOTE_CREATED, invoice.tenant_id, data)


async def payment_moved(conn: AsyncConnection, payment: Any, status: str, changes: dict[str, Any]) -> None:
    """`payment.succeeded`, `payment.failed` (with `invoice.payment_failed`) or `payment.refunded`
    for a payment (as it was) just moved to `status` by `changes`."""
    data = {
        "payment_id": payment.payment_id,
        "invoice_id": payment.invoice_id,
        "method": payment.method,
        "status": str(status),
        "currency": payment.currency,
        "amount": _major(payment.amount),
        "received": _major(changes.get("received", payment.received)),
        "refunded": _major(changes.get("refunded", payment.refunded)),
        "failure_code": changes.get("failure_code", payment.failure_code),
        "next_retry_at": changes.get("next_retry_at"),
    }
    for event_type in PAYMENT_MOVES.get(str(status), ()):
        await outbox.record(conn, event_type, payment.tenant_id, data)


def _invoice(row: Any) -> dict[str, Any]:
    return {
        "invoice_id": row.invoice_id,
        "number": row.number,
        "status": row.status,
        "currency": row.currency,
        "subtotal": _major(row.subtotal),
        "tax": _major(row.tax),
        "total": _major(row.total),
        "period": {"start": row.period_start, "end": row.period_end},
    }


def _major(amount: Any) -> str | None:
    return None if amount is None else str(amount)
