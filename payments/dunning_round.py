"""A dunning round: retry the failed payments whose time has come (payments/dunning.py says
when), after finishing charges a crash cut off. Every replica runs rounds; rows are claimed with
SKIP LOCKED, so replicas share the work and never retry one payment twice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from infra import audit_store, credit_note_store, invoice_store, payment_store
from invoicing.lifecycle import PAYABLE
from payments.charging import charge
from payments.context import PaymentContext
from payments.lifecycle import PaymentState
from payments.records import Payment
from payments.settlement import audit_moved

log = logging.getLogger(__name__)
# A charge whose outcome is still unrecorded this long after it began was cut off by a crash: far
# longer than a provider call with the SDKs' own retries, far shorter than providers keep an
# idempotency key (a day at least).
UNRECORDED_AFTER = timedelta(minutes=10)


async def retry_due(ctx: PaymentContext, now: datetime, limit: int = 50) -> int:
    """Retry the failed payments whose time has come, one at a time, after finishing charges cut
    off by a crash; how many were retried or finished."""
    retried = await _finish_unrecorded(ctx, now, limit)
    for _ in range(limit):
        payment = await _claim_retry(ctx, now)
        if payment is None:
            break
        try:
            await charge(ctx, payment, payment.attempts, audit_store.DUNNING)
        except Exception:
            log.warning("dunning retry of payment %s failed", payment.payment_id, exc_info=True)
        retried += 1
    return retried


async def _finish_unrecorded(ctx: PaymentContext, now: datetime, limit: int) -> int:
    """Charge again, under the same provider key, the payments whose process died before it
    recorded what the provider did (issue 7): the provider replays its answer, so a charge that
    went through is recorded, not made twice, and one that never arrived is made now. Methods
    whose charge moves no money (the payer pays by themselves) have nothing to finish."""
    no_money_moved = [p.name for p in ctx.providers.registry.values() if not p.charge_moves_money]
    async with ctx.engine.begin() as conn:
        rows = await payment_store.unrecorded_charges(conn, now - UNRECORDED_AFTER, limit, no_money_moved)
        cut_off = [Payment.of(row) for row in rows]
        for payment in cut_off:  # touched, so another replica does not take it as well
            await payment_store.update_payment(conn, payment.payment_id)
    for payment in cut_off:
        try:
            await charge(ctx, payment, max(payment.attempts, 1), audit_store.DUNNING)
        except Exception:
            log.warning("finishing payment %s failed", payment.payment_id, exc_info=True)
    return len(cut_off)


async def _claim_retry(ctx: PaymentContext, now: datetime) -> Payment | None:
    """The next failed payment due for a retry, now pending on its next attempt, or None.
    Its invoice is checked again first: if it was paid another way, voided or credited
    meanwhile, the retry is dropped; otherwise it charges what is due now."""
    async with ctx.engine.begin() as conn:
        while True:
            due_now = await payment_store.due_for_retry(conn, now, limit=1)
            if not due_now:
                return None
            payment = Payment.of(due_now[0])
            invoice = invoice_store.existing(
                await credit_note_store.lock_invoice(conn, payment.invoice_id), payment.invoice_id
            )
            due = await payment_store.amount_due(conn, invoice)
            if invoice.status in PAYABLE and due > 0:
                break
            await payment_store.update_payment(conn, payment.payment_id, next_retry_at=None)
        retry = {"status": PaymentState.PENDING.value, "attempts": payment.attempts + 1, "amount": due}
        await payment_store.update_payment(conn, payment.payment_id, next_retry_at=None, **retry)
        await audit_moved(conn, payment, retry, audit_store.DUNNING)
        return Payment.of(await payment_store.find(conn, payment.payment_id))
