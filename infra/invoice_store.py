"""SQL for invoices: one draft per tenant and period, and finalization with a gapless number.

Gapless numbering: the number is taken in the finalizing transaction from a per-issuer-and-year
counter row (an UPSERT that increments it). The row stays locked until that transaction ends, so
concurrent finalizations queue on it, and a transaction that rolls back gives its number back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import invoice_lines, invoice_numbers, invoice_pdfs, invoices


class InvoiceNotFound(LookupError):
    """No invoice with that id."""


@dataclass(frozen=True)
class Finalized:
    invoice_id: uuid.UUID
    number: str


def format_number(issuer: str, year: int, sequence: int) -> str:
    return f"{issuer}-{year}-{sequence:06d}"


async def next_number(conn: AsyncConnection, issuer: str, year: int) -> str:
    """The next number of the issuer's year; held until the caller's transaction ends."""
    counter = insert(invoice_numbers).values(issuer=issuer, year=year, last_number=1)
    counter = counter.on_conflict_do_update(
        index_elements=["issuer", "year"], set_={"last_number": invoice_numbers.c.last_number + 1}
    ).returning(invoice_numbers.c.last_number)
    return format_number(issuer, year, (await conn.execute(counter)).scalar_one())


async def insert_draft(
    conn: AsyncConnection,
    *,
    invoice_id: uuid.UUID,
    tenant_id: str,
    period_start: datetime,
    period_end: datetime,
    currency: str,
    subtotal: Decimal,
    tax: Decimal,
    issuer: str,
    document: dict,
    lines: list[dict],
) -> tuple[uuid.UUID, bool]:
    """The tenant's invoice for the period: a new draft, or the one already there (created=False)."""
    created = await conn.scalar(
        insert(invoices)
        .values(
            invoice_id=invoice_id,
            tenant_id=tenant_id,
            period_start=period_start,
            period_end=period_end,
            currency=currency,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            issuer=issuer,
            document=document,
        )
        .on_conflict_do_nothing(constraint="invoices_one_per_period")
        .returning(invoices.c.invoice_id)
    )
    if created is None:
        existing = await conn.scalar(
            select(invoices.c.invoice_id).where(
                invoices.c.tenant_id == tenant_id,
                invoices.c.period_start == period_start,
                invoices.c.period_end == period_end,
            )
        )
        return existing, False
    if lines:
        await conn.execute(
            insert(invoice_lines),
            [{"invoice_id": invoice_id, "line_no": n, **line} for n, line in enumerate(lines, start=1)],
        )
    return invoice_id, True


async def find(conn: AsyncConnection, invoice_id: uuid.UUID):
    """The invoice row, or None."""
    return (await conn.execute(select(invoices).where(invoices.c.invoice_id == invoice_id))).first()


async def find_for_period(conn: AsyncConnection, tenant_id: str, start: datetime, end: datetime):
    query = select(invoices).where(
        invoices.c.tenant_id == tenant_id, invoices.c.period_start == start, invoices.c.period_end == end
    )
    return (await conn.execute(query)).first()


async def finalize(conn: AsyncConnection, invoice_id: uuid.UUID) -> Finalized:
    """Number and freeze a draft; a finalized invoice is returned as it is (idempotent)."""
    row = (
        await conn.execute(
            select(invoices.c.status, invoices.c.number, invoices.c.issuer)
            .where(invoices.c.invoice_id == invoice_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise InvoiceNotFound(str(invoice_id))
    if row.status != "draft":
        return Finalized(invoice_id, row.number)
    now = await conn.scalar(select(func.now()))
    number = await next_number(conn, row.issuer, now.year)
    await conn.execute(
        update(invoices)
        .where(invoices.c.invoice_id == invoice_id)
        .values(status="finalized", number=number, finalized_at=now)
    )
    return Finalized(invoice_id, number)


async def stored_pdf(conn: AsyncConnection, invoice_id: uuid.UUID):
    """(sha256, path) of the invoice's kept PDF, or None."""
    return (await conn.execute(select(invoice_pdfs).where(invoice_pdfs.c.invoice_id == invoice_id))).first()


async def record_pdf(conn: AsyncConnection, invoice_id: uuid.UUID, sha256: str, path: str) -> None:
    """Keep the first PDF recorded for a finalized invoice; a concurrent second render is dropped."""
    await conn.execute(
        insert(invoice_pdfs).values(invoice_id=invoice_id, sha256=sha256, path=path).on_conflict_do_nothing()
    )
