"""SQL for credit notes: written once against a finalized invoice, numbered in the issuer's
credit-note series ("<issuer>-CN-<year>-<n>", gapless like invoice numbers). The invoice row is
locked while a note is added, so two notes at once cannot both take the same remainder."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.invoice_store import next_number
from infra.schema import credit_notes, invoices


def series(issuer: str) -> str:
    return f"{issuer}-CN"


async def lock_invoice(conn: AsyncConnection, invoice_id: uuid.UUID) -> Row[Any] | None:
    """The invoice row, locked until the transaction ends, or None."""
    query = select(invoices).where(invoices.c.invoice_id == invoice_id).with_for_update()
    return (await conn.execute(query)).first()


async def credited(conn: AsyncConnection, invoice_id: uuid.UUID) -> tuple[Decimal, Decimal]:
    """(subtotal, tax) the invoice's credit notes have taken back so far, in major units."""
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(credit_notes.c.subtotal), 0),
                func.coalesce(func.sum(credit_notes.c.tax), 0),
            ).where(credit_notes.c.invoice_id == invoice_id)
        )
    ).one()
    return Decimal(row[0]), Decimal(row[1])


async def insert_credit_note(
    conn: AsyncConnection,
    invoice: Row[*tuple[Any, ...]],
    *,
    subtotal: Decimal,
    tax: Decimal,
    reason: str,
    document: Mapping[str, object],
    created_by: str,
) -> Row[Any]:
    """Number and keep a credit note for the (locked) invoice row; the stored row."""
    year = (await conn.execute(select(func.now()))).scalar_one().year
    values = {
        "credit_note_id": uuid.uuid4(),
        "invoice_id": invoice.invoice_id,
        "number": await next_number(conn, series(invoice.issuer), year),
        "currency": invoice.currency,
        "subtotal": subtotal,
        "tax": tax,
        "total": subtotal + tax,
        "reason": reason,
        "document": document,
        "created_by": created_by,
    }
    # RETURNING a whole table: SQLAlchemy types the result as Any.
    stored: Row[Any] = (await conn.execute(insert(credit_notes).values(**values).returning(credit_notes))).one()
    return stored


async def credit_notes_of(conn: AsyncConnection, invoice_id: uuid.UUID) -> list[Row[Any]]:
    query = (
        select(credit_notes)
        .where(credit_notes.c.invoice_id == invoice_id)
        .order_by(credit_notes.c.created_at)
    )
    return list(await conn.execute(query))


class CreditNoteNotFound(LookupError):
    """No credit note with that id."""


async def find(conn: AsyncConnection, credit_note_id: uuid.UUID) -> Row[Any] | None:
    """The credit note row, or None."""
    query = select(credit_notes).where(credit_notes.c.credit_note_id == credit_note_id)
    return (await conn.execute(query)).first()
