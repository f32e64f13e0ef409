"""Taking in a provider's webhook: verify the delivery, then apply the event once.

Providers deliver at least once, late and out of order. An event is recorded by its id in the
same transaction that applies it, so a replay is recognised and ignored; the payment state
machine ignores a report that would move a payment backwards. How a provider signs and reads its
events is its adapter's business (`PaymentProvider.webhooks`, `.read_event`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from infra import audit_store, metrics, payment_store
from payments.approvals import capture_approved
from payments.context import PaymentContext
from payments.errors import PaymentError, ProviderUnavailable, WebhookVerificationError
from payments.gateway import EventReading, Report, WebhookEvent
from payments.lifecycle import PaymentState
from payments.records import EventOutcome, Payment
from payments.settlement import apply_report


class CannotVerify(PaymentError):
    """The delivery could not be checked now (webhooks not configured, certificate unreachable)."""


async def receive_event(
    ctx: PaymentContext, provider: str, payload: bytes, headers: Mapping[str, str], request_id: str | None
) -> EventOutcome:
    """Verify a delivery against its raw body and apply the event it carries. Raises
    `WebhookVerificationError` for a delivery that must not be processed, `CannotVerify` when it
    cannot be checked now, `PaymentError` when the provider could not be reached to act on it.
    `request_id` goes on the audit entries of what the event changes."""
    audit_store.REQUEST_ID.set(request_id)
    try:
        verifier = ctx.providers.webhooks(provider)
        # Off the event loop: a verifier may fetch a signing certificate over the network.
        event = await asyncio.to_thread(verifier.verify, payload, headers)
    except WebhookVerificationError:
        metrics.webhook_events.inc(tags={"provider": provider, "outcome": "refused"})
        raise
    except ProviderUnavailable as error:
        raise CannotVerify(str(error)) from None
    outcome = await handle_event(ctx, event)
    kind = "duplicate" if outcome.duplicate else "applied"
    metrics.webhook_events.inc(tags={"provider": event.provider, "outcome": kind})
    return outcome


async def handle_event(ctx: PaymentContext, event: WebhookEvent) -> EventOutcome:
    """Apply a verified event once; a replay is recognised by its id and ignored, except an
    approval whose payment is still pending: the process that recorded it may have died before it
    captured (issue 7), and the capture's own key lets the provider capture only once."""
    provider = ctx.providers.provider(event.provider)
    reading = EventReading(None) if provider.read_event is None else provider.read_event(event)
    actor = audit_store.webhook_actor(event.provider)
    async with ctx.engine.begin() as conn:
        fresh = await payment_store.record_event(
            conn, event.provider, event.event_id, event.type, event.created
        )
        payment = None
        if reading.transaction_id is not None:
            row = await payment_store.find_by_transaction(
                conn, provider.name, reading.transaction_id, for_update=True
            )
            payment = None if row is None else Payment.of(row)
        uncaptured = reading.approved and payment is not None and payment.status == PaymentState.PENDING
        if not fresh and not uncaptured:
            return EventOutcome(event.provider, event.event_id, "duplicate: already processed")
        if payment is None:
            outcome = "no payment of ours" if reading.transaction_id else f"not used: {event.type}"
        elif reading.approved:
            outcome = "approved: capturing"
        else:
            outcome = await apply_report(ctx, conn, payment, reading.report or Report(None), None, actor)
        await payment_store.event_outcome(
            conn, event.provider, event.event_id, outcome, None if payment is None else payment.payment_id
        )
    if payment is not None and reading.approved:
        outcome = await _capture(ctx, event, payment)
    return EventOutcome(event.provider, event.event_id, outcome)


async def _capture(ctx: PaymentContext, event: WebhookEvent, payment: Payment) -> str:
    """Capture a charge its payer approved. If the provider cannot be reached the event is
    forgotten, so its redelivery captures it."""
    try:
        return await capture_approved(ctx, payment, audit_store.webhook_actor(event.provider))
    except PaymentError:
        async with ctx.engine.begin() as conn:
            await payment_store.forget_event(conn, event.provider, event.event_id)
        raise
