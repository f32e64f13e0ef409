"""Refunding a collected payment, in part or in full, once per Idempotency-Key.

The refund row is written (pending) before the provider is asked, and the provider's key is
`refund:<refund id>`, so a retried request refunds once. Refunds still in flight count against
what is left, so two at once cannot both take the same remainder.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import audit_store, payment_store
from payments.context import PaymentContext
from payments.errors import (
    IdempotencyKeyReused,
    NotPayable,
    OperationNotSupported,
    PaymentError,
    PaymentNotFound,
)
from payments.gateway import PaymentStatus, RefundRequest, Report
from payments.lifecycle import COLLECTED
from payments.records import Payment, Refund
from payments.settlement import apply_report, locked, total_refunded
from pricing.errors import InvalidField
from pricing.money import Currency


async def refund_payment(
    ctx: PaymentContext,
    payment_id: uuid.UUID,
    amount: Decimal | None,
    idempotency_key: str,
    reason: str | None,
    actor: str,
) -> Refund:
    """Give back `amount` of a collected payment, or all that is left when None."""
    async with ctx.engine.begin() as conn:
        existing = await payment_store.find_refund_by_key(conn, idempotency_key)
        if existing is not None:
            if existing.payment_id != payment_id:
                raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was used for another refund")
            return Refund.of(existing)
        row = await payment_store.find(conn, payment_id, for_update=True)
        if row is None:
            raise PaymentNotFound(str(payment_id))
        payment = Payment.of(row)
        if payment.status not in COLLECTED:
            raise NotPayable(
                f"payment {payment_id} is {payment.status}; only collected payments are refunded"
            )
        left = payment.received - await _refunded(conn, payment_id)
        wanted = left if amount is None else amount
        if wanted <= 0 or wanted > left:
            raise InvalidField("amount", f"must be more than 0 and at most the {left} not yet refunded")
        refund = Refund.of(
            await payment_store.insert_refund(
                conn,
                refund_id=uuid.uuid4(),
                payment_id=payment_id,
                idempotency_key=idempotency_key,
                amount=wanted,
                status="pending",
                reason=reason,
                created_by=actor,
            )
        )
        await _audit(conn, refund, payment, actor, None, {"refundable_after": left - wanted})
    request = RefundRequest(
        transaction_id=payment.transaction_id or "",
        currency=Currency.of(payment.currency),
        idempotency_key=f"refund:{refund.refund_id}",
        amount=wanted,
        reason=reason,
    )
    try:
        result = await asyncio.to_thread(ctx.providers.gateway(payment.method).refund, request)
        status, provider_id = result.status.value, result.refund_id
    except OperationNotSupported:  # a method without refunds by API: finance pays it back by hand
        status, provider_id = PaymentStatus.COMPLETED.value, None
    except PaymentError:
        async with ctx.engine.begin() as conn:
            await payment_store.update_refund(conn, refund.refund_id, status=PaymentStatus.FAILED.value)
            await _audit(conn, refund, payment, actor, "pending", {"status": "failed"})
        raise
    async with ctx.engine.begin() as conn:
        current = await locked(conn, payment_id)
        await payment_store.update_refund(
            conn, refund.refund_id, status=status, provider_refund_id=provider_id
        )
        if status != "pending":
            await _audit(conn, refund, payment, actor, "pending", {"status": status})
        # The total of the refunds that stand, never added twice to what a webhook reported.
        refunded = await _refunded(conn, payment_id)
        await apply_report(ctx, conn, current, Report(None, refunded=refunded), None, actor)
        return Refund.of(await payment_store.find_refund_by_key(conn, idempotency_key))


async def _refunded(conn: AsyncConnection, payment_id: uuid.UUID) -> Decimal:
    return total_refunded(await payment_store.refunds_of(conn, payment_id))


async def _audit(
    conn: AsyncConnection,
    refund: Refund,
    payment: Payment,
    actor: str,
    before: str | None,
    after: dict[str, Any],
) -> None:
    """`refund.requested` (before None) or `refund.<status>` as the provider answers."""
    state = {"amount": refund.amount, "currency": payment.currency, "payment_id": payment.payment_id}
    action = "refund.requested" if before is None else f"refund.{after['status']}"
    await audit_store.record(
        conn,
        actor,
        action,
        "refund",
        refund.refund_id,
        payment.tenant_id,
        None if before is None else {"status": before, **state},
        {"status": "pending", "reason": refund.reason, **state, **after},
    )
