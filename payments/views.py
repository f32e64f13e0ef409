"""Reading payments: a payment with its attempts and refunds, the latest payments and the
dunning queue, as records."""

from __future__ import annotations

import uuid

from infra import payment_store
from payments.context import PaymentContext
from payments.records import Attempt, Payment, PaymentDetails, Refund


async def payment_details(ctx: PaymentContext, payment_id: uuid.UUID) -> PaymentDetails | None:
    """The payment, or None when there is none with that id."""
    async with ctx.engine.connect() as conn:
        row = await payment_store.find(conn, payment_id)
    return None if row is None else await details_of(ctx, Payment.of(row))


async def details_of(ctx: PaymentContext, payment: Payment) -> PaymentDetails:
    async with ctx.engine.connect() as conn:
        attempts = await payment_store.attempts_of(conn, payment.payment_id)
        refunds = await payment_store.refunds_of(conn, payment.payment_id)
    return PaymentDetails(
        payment, tuple(Attempt.of(a) for a in attempts), tuple(Refund.of(r) for r in refunds)
    )


async def recent_payments(ctx: PaymentContext, limit: int = 20) -> tuple[Payment, ...]:
    """The newest payments across tenants, for staff (the finance console)."""
    async with ctx.engine.connect() as conn:
        return tuple(Payment.of(row) for row in await payment_store.latest(conn, limit))


async def dunning_queue(ctx: PaymentContext, limit: int = 20) -> tuple[Payment, ...]:
    """Failed payments still to be retried, the next retry first, for staff."""
    async with ctx.engine.connect() as conn:
        return tuple(Payment.of(row) for row in await payment_store.waiting_for_retry(conn, limit))
