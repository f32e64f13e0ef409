"""Applying what a provider reported to a payment and its invoice: the one place a payment's
row moves, whoever brought the report (the charge's answer, a webhook, a refund, dunning, a bank
statement). A status only moves forward (payments/lifecycle.py); the invoice follows: paid when
nothing is due, uncollectible after the last dunning retry. Every move is audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import audit_store, credit_note_store, invoice_store, metrics, payment_store
from invoicing.lifecycle import PAYABLE, InvoiceStatus
from invoicing.status_change import move_invoice
from notifications import emit
from payments.context import PaymentContext
from payments.dunning import reminder
from payments.gateway import Report
from payments.lifecycle import COLLECTED, PaymentState, advance, after_refunds
from payments.records import Payment
from pricing.money import Currency, Money


async def settle(
    ctx: PaymentContext, payment_id: uuid.UUID, report: Report, attempt: int | None = None, *, actor: str
) -> Payment:
    """Apply a provider's report to the payment and its invoice, in one transaction; `actor` is
    who brought the report (the caller charging, a webhook, dunning), for the audit log."""
    async with ctx.engine.begin() as conn:
        payment = await locked(conn, payment_id)
        await apply_report(ctx, conn, payment, report, attempt, actor)
        return Payment.of(await payment_store.find(conn, payment_id))


async def locked(conn: AsyncConnection, payment_id: uuid.UUID) -> Payment:
    """The payment, locked until the transaction ends."""
    return Payment.of(await payment_store.find(conn, payment_id, for_update=True))


async def apply_report(
    ctx: PaymentContext,
    conn: AsyncConnection,
    payment: Payment,
    report: Report,
    attempt: int | None,
    actor: str,
) -> str:
    """Move the (locked) payment forward as far as `report` allows, audited when its status
    moves; what happened, in words."""
    current = payment.status
    values: dict[str, Any] = {}
    newer = attempt is not None and attempt >= payment.attempts  # a retry makes a new charge
    for name in ("transaction_id", "approval_url", "instructions"):
        if getattr(report, name) and (newer or not getattr(payment, name)):
            values[name] = getattr(report, name)
    if attempt is not None:
        values["attempts"] = max(payment.attempts, attempt)
    new = None if report.status is None else advance(current, report.status)
    if report.refunded is not None and current in COLLECTED and report.refunded > payment.refunded:
        values["refunded"] = report.refunded
        new = after_refunds(payment.received, report.refunded)
    now = datetime.now(UTC)
    if new == PaymentState.COMPLETED:
        values |= {"received": payment.amount, "failure_code": None, "next_retry_at": None}
    if new == PaymentState.FAILED:
        failures = attempt or payment.attempts or 1
        retry_at = ctx.schedule.next_retry(failures, now)
        values |= {"failure_code": report.failure_code, "next_retry_at": retry_at}
    if new is not None:
        values["status"] = new.value
        metrics.payment_outcomes.inc(tags={"method": payment.method, "state": new.value})
    if values:
        await payment_store.update_payment(conn, payment.payment_id, **values)
    if new is not None:
        await audit_moved(conn, payment, values, actor)
        await emit.payment_moved(conn, payment, new, values)  # webhooks, same commit
    if attempt is not None and (new is not None or report.status == PaymentState.PENDING):
        note = None
        if (new or current) == PaymentState.FAILED:
            note = await _reminder(conn, payment, report.failure_code, values.get("next_retry_at"))
        await payment_store.add_attempt(
            conn,
            payment.payment_id,
            attempt,
            at=now,
            outcome=(new or current).value,
            failure_code=report.failure_code,
            reminder=note,
        )
    await _follow_invoice(conn, payment, new, values.get("next_retry_at"), actor)
    return (
        "ignored: the payment has moved past that" if new is None and not values else f"now {new or current}"
    )


async def _reminder(
    conn: AsyncConnection, payment: Payment, failure_code: str | None, retry_at: datetime | None
) -> str:
    invoice = await invoice_store.get(conn, payment.invoice_id)
    amount = Money.from_major(payment.amount, Currency.of(payment.currency))
    return reminder(invoice.number, str(amount), failure_code, retry_at)


async def _follow_invoice(
    conn: AsyncConnection, payment: Payment, new: PaymentState | None, retry_at: datetime | None, actor: str
) -> None:
    invoice = invoice_store.existing(
        await credit_note_store.lock_invoice(conn, payment.invoice_id), payment.invoice_id
    )
    settled = new == PaymentState.COMPLETED and invoice.status in PAYABLE
    if settled and await payment_store.amount_due(conn, invoice) <= 0:
        await move_invoice(conn, invoice.invoice_id, InvoiceStatus.PAID, actor=actor)
    if new == PaymentState.FAILED and retry_at is None and invoice.status == InvoiceStatus.FINALIZED:
        await move_invoice(conn, invoice.invoice_id, InvoiceStatus.UNCOLLECTIBLE, actor=actor)


# --- audit log -------------------------------------------------------------------------------

_AUDITED = ("status", "amount", "received", "refunded", "failure_code", "attempts")


def _payment_state(payment: Payment, changes: dict[str, Any] | None = None) -> dict[str, object]:
    state: dict[str, object] = {name: getattr(payment, name) for name in _AUDITED}
    return (
        state | {k: v for k, v in (changes or {}).items() if k in _AUDITED} | {"currency": payment.currency}
    )


async def audit_created(conn: AsyncConnection, payment: Payment, actor: str) -> None:
    after = _payment_state(payment) | {"method": payment.method, "invoice_id": payment.invoice_id}
    await audit_store.record(
        conn, actor, "payment.created", "payment", payment.payment_id, payment.tenant_id, None, after
    )


async def audit_moved(
    conn: AsyncConnection, payment: Payment, changes: dict[str, Any], actor: str, action: str | None = None
) -> None:
    """A payment `payment` (as it was) changed by `changes`: `payment.<new status>` unless
    `action` says otherwise."""
    after = _payment_state(payment, changes)
    await audit_store.record(
        conn,
        actor,
        action or f"payment.{after['status']}",
        "payment",
        payment.payment_id,
        payment.tenant_id,
        _payment_state(payment),
        after,
    )


def total_refunded(refunds: list[Any]) -> Decimal:
    """What the refunds that stand (pending or completed) give back."""
    return sum((Decimal(r.amount) for r in refunds if r.status != "failed"), Decimal(0))
