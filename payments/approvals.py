"""Capturing a charge its payer approved at the provider (a provider whose gateway
`CapturesApprovals`: orders the payer approves on the provider's site, then we capture).

Two things tell us a payer approved: the provider's webhook (payments/webhook_intake.py) and the
payer's browser coming back to our return URL (the portal's return route for that provider).
Either captures; both use the key `<payment id>:capture`, so the provider captures once whichever
comes first, and a payment no longer pending is left as it is. Capturing on the return, as the
providers' own integration guides do, means a payer sees the invoice paid at once, and a site
whose webhooks are not (yet) set up still gets paid.
"""

from __future__ import annotations

import asyncio

from infra import payment_store
from payments.context import PaymentContext
from payments.errors import PaymentDeclined
from payments.gateway import CapturesApprovals, Report
from payments.lifecycle import PaymentState
from payments.records import Payment
from payments.settlement import settle


async def capture_approved(ctx: PaymentContext, payment: Payment, actor: str) -> str:
    """Capture `payment`, pending and approved by its payer; what happened, in words. A declined
    capture fails the payment; any other provider error is raised (nothing was recorded)."""
    gateway = ctx.providers.gateway(payment.method)
    if not isinstance(gateway, CapturesApprovals) or payment.transaction_id is None:
        return "approved; nothing to capture"
    try:
        result = await asyncio.to_thread(
            gateway.capture, payment.transaction_id, f"{payment.payment_id}:capture"
        )
    except PaymentDeclined as declined:
        report = Report(PaymentState.FAILED, failure_code=declined.decline_code)
        await settle(ctx, payment.payment_id, report, payment.attempts, actor=actor)
        return "approved; the capture was declined"
    await settle(ctx, payment.payment_id, Report.of(result), actor=actor)
    return "approved and captured"


async def capture_on_return(ctx: PaymentContext, method: str, transaction_id: str) -> Payment | None:
    """The payer is back from approving `transaction_id` (an order id of `method`): capture its
    payment if still pending. The payment as it then stands; None when the id is not ours.
    Raises `PaymentError` when the provider refuses (not approved) or cannot be reached."""
    payment = await _returning(ctx, method, transaction_id)
    if payment is None or payment.status != PaymentState.PENDING:
        return payment
    await capture_approved(ctx, payment, f"payer-return:{method}")
    async with ctx.engine.connect() as conn:
        return Payment.of(await payment_store.find(conn, payment.payment_id))


async def abandon_on_return(ctx: PaymentContext, method: str, transaction_id: str) -> Payment | None:
    """The payer cancelled at the provider instead of approving `transaction_id`: its payment,
    if still pending, is abandoned, so the invoice can be paid again. None when the id is not ours."""
    payment = await _returning(ctx, method, transaction_id)
    if payment is None or payment.status != PaymentState.PENDING:
        return payment
    return await settle(ctx, payment.payment_id, Report(PaymentState.ABANDONED), actor=f"payer-cancel:{method}")


async def _returning(ctx: PaymentContext, method: str, transaction_id: str) -> Payment | None:
    """The payment of the provider's `transaction_id` a payer comes back with; None if not ours."""
    async with ctx.engine.connect() as conn:
        row = await payment_store.find_by_transaction(conn, method, transaction_id)
    return None if row is None else Payment.of(row)
