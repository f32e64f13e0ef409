"""SQL for payments, their attempts and refunds, webhook events, bank credits and the provider
ids of tenants' payment methods (stored encrypted by the caller)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import (
    bank_credits,
    credit_notes,
    invoices,
    payment_attempts,
    payment_events,
    payment_methods,
    payments,
    refunds,
)

RECONCILIATION_LOCK = 0x62616E6B  # "bank": the advisory lock key of statement imports


async def find(conn: AsyncConnection, payment_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
    query = select(payments).where(payments.c.payment_id == payment_id)
    return (await conn.execute(query.with_for_update() if for_update else query)).first()


async def find_by_key(conn: AsyncConnection, idempotency_key: str) -> Row[Any] | None:
    return (await conn.execute(select(payments).where(payments.c.idempotency_key == idempotency_key))).first()


async def find_by_transaction(
    conn: AsyncConnection, method: str, transaction_id: str, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(payments).where(payments.c.method == method, payments.c.transaction_id == transaction_id)
    return (await conn.execute(query.with_for_update() if for_update else query)).first()


async def insert_payment(conn: AsyncConnection, **values: object) -> Row[Any] | None:
    """The new payment row, or None when its idempotency key is taken (a concurrent twin)."""
    statement = insert(payments).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    row: Row[Any] | None = (await conn.execute(statement.returning(payments))).first()
    return row


async def update_payment(conn: AsyncConnection, payment_id: uuid.UUID, **values: object) -> None:
    await conn.execute(
        update(payments).where(payments.c.payment_id == payment_id).values(updated_at=func.now(), **values)
    )


async def of_invoice(conn: AsyncConnection, invoice_id: uuid.UUID) -> list[Row[Any]]:
    query = select(payments).where(payments.c.invoice_id == invoice_id).order_by(payments.c.created_at)
    return list(await conn.execute(query))


async def amount_due(conn: AsyncConnection, invoice: Row[*tuple[Any, ...]]) -> Decimal:
    """The invoice's total less its credit notes and what its payments have collected."""
    credited = await conn.scalar(
        select(func.coalesce(func.sum(credit_notes.c.total), 0)).where(
            credit_notes.c.invoice_id == invoice.invoice_id
        )
    )
    received = await conn.scalar(
        select(func.coalesce(func.sum(payments.c.received), 0)).where(
            payments.c.invoice_id == invoice.invoice_id
        )
    )
    return Decimal(invoice.total) - Decimal(credited or 0) - Decimal(received or 0)


async def add_attempt(conn: AsyncConnection, payment_id: uuid.UUID, attempt: int, **values: object) -> None:
    statement = insert(payment_attempts).values(payment_id=payment_id, attempt=attempt, **values)
    await conn.execute(statement.on_conflict_do_nothing())


async def attempts_of(conn: AsyncConnection, payment_id: uuid.UUID) -> list[Row[Any]]:
    query = select(payment_attempts).where(payment_attempts.c.payment_id == payment_id)
    return list(await conn.execute(query.order_by(payment_attempts.c.attempt)))


async def due_for_retry(conn: AsyncConnection, now: datetime, limit: int = 50) -> list[Row[Any]]:
    """Failed payments whose retry is due, locked (SKIP LOCKED: replicas share the work)."""
    query = (
        select(payments)
        .where(payments.c.status == "failed", payments.c.next_retry_at <= now)
        .order_by(payments.c.next_retry_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await conn.execute(query))


async def unrecorded_charges(
    conn: AsyncConnection, before: datetime, limit: int = 50, excluded_methods: Sequence[str] = ()
) -> list[Row[Any]]:
    """Pending payments whose current attempt has no recorded outcome and that have not moved
    since `before`: whoever was charging them died mid-call. Locked (SKIP LOCKED). Methods whose
    charge moves no money are `excluded_methods`: nothing to finish."""
    recorded = select(payment_attempts.c.payment_id).where(
        payment_attempts.c.payment_id == payments.c.payment_id,
        payment_attempts.c.attempt == func.greatest(payments.c.attempts, 1),
    )
    query = (
        select(payments)
        .where(
            payments.c.status == "pending",
            payments.c.method.not_in(excluded_methods),
            payments.c.updated_at < before,
            ~recorded.exists(),
        )
        .order_by(payments.c.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await conn.execute(query))


async def record_event(
    conn: AsyncConnection, provider: str, event_id: str, type_: str, created: datetime
) -> bool:
    """Keep a webhook event; False when it was delivered before (a replay)."""
    statement = (
        insert(payment_events)
        .values(provider=provider, event_id=event_id, type=type_, created=created, outcome="received")
        .on_conflict_do_nothing()
        .returning(payment_events.c.event_id)
    )
    return (await conn.execute(statement)).first() is not None


async def forget_event(conn: AsyncConnection, provider: str, event_id: str) -> None:
    """Drop an event whose processing could not finish, so the provider's redelivery is applied."""
    await conn.execute(
        delete(payment_events).where(
            payment_events.c.provider == provider, payment_events.c.event_id == event_id
        )
    )


async def event_outcome(
    conn: AsyncConnection, provider: str, event_id: str, outcome: str, payment_id: uuid.UUID | None
) -> None:
    await conn.execute(
        update(payment_events)
        .where(payment_events.c.provider == provider, payment_events.c.event_id == event_id)
        .values(outcome=outcome[:200], payment_id=payment_id)
    )


async def insert_refund(conn: AsyncConnection, **values: object) -> Row[Any] | None:
    statement = insert(refunds).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"])
    row: Row[Any] | None = (await conn.execute(statement.returning(refunds))).first()
    return row


async def find_refund_by_key(conn: AsyncConnection, idempotency_key: str) -> Row[Any] | None:
    return (await conn.execute(select(refunds).where(refunds.c.idempotency_key == idempotency_key))).first()


async def refunds_of(conn: AsyncConnection, payment_id: uuid.UUID) -> list[Row[Any]]:
    query = select(refunds).where(refunds.c.payment_id == payment_id).order_by(refunds.c.created_at)
    return list(await conn.execute(query))


async def save_method(
    conn: AsyncConnection, tenant_id: str, provider: str, customer_ref: str | None, method_ref: str
) -> None:
    statement = insert(payment_methods).values(
        tenant_id=tenant_id, provider=provider, customer_ref=customer_ref, method_ref=method_ref
    )
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id", "provider"],
        set_={"customer_ref": customer_ref, "method_ref": method_ref, "updated_at": func.now()},
    )
    await conn.execute(statement)


async def find_method(conn: AsyncConnection, tenant_id: str, provider: str) -> Row[Any] | None:
    query = select(payment_methods).where(
        payment_methods.c.tenant_id == tenant_id, payment_methods.c.provider == provider
    )
    return (await conn.execute(query)).first()


async def known_bank_entries(conn: AsyncConnection, entry_ids: list[str]) -> set[str]:
    query = select(bank_credits.c.entry_id).where(bank_credits.c.entry_id.in_(entry_ids))
    return set((await conn.execute(query)).scalars())


async def insert_bank_credit(conn: AsyncConnection, **values: object) -> bool:
    """Keep a bank credit; False when its entry id was applied before."""
    statement = (
        insert(bank_credits).values(**values).on_conflict_do_nothing().returning(bank_credits.c.entry_id)
    )
    return (await conn.execute(statement)).first() is not None


async def lock_reconciliation(conn: AsyncConnection) -> None:
    """One statement import at a time (until the transaction ends): two imports at once could
    each apply a different credit against the same amount due."""
    await conn.execute(select(func.pg_advisory_xact_lock(RECONCILIATION_LOCK)))


async def open_invoices(conn: AsyncConnection) -> list[Row[Any]]:
    """Invoices that can still be paid, with their numbers (for matching bank credits)."""
    query = select(invoices).where(invoices.c.status.in_(("finalized", "uncollectible")))
    return list(await conn.execute(query))


async def update_refund(conn: AsyncConnection, refund_id: uuid.UUID, **values: object) -> None:
    await conn.execute(update(refunds).where(refunds.c.refund_id == refund_id).values(**values))


async def latest(conn: AsyncConnection, limit: int) -> list[Row[Any]]:
    """The newest payments first."""
    return list(await conn.execute(select(payments).order_by(payments.c.created_at.desc()).limit(limit)))


async def waiting_for_retry(conn: AsyncConnection, limit: int) -> list[Row[Any]]:
    """Failed payments still to be retried, the next retry first: the dunning queue."""
    query = (
        select(payments)
        .where(payments.c.status == "failed", payments.c.next_retry_at.is_not(None))
        .order_by(payments.c.next_retry_at)
        .limit(limit)
    )
    return list(await conn.execute(query))
