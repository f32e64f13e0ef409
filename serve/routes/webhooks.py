"""Provider webhooks: verified by signature (no JWT: the provider is the caller), each event
applied once by its id. A forged or stale delivery gets 400 and changes nothing; a replay gets
200 so the provider stops resending it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from starlette.responses import Response

from infra import audit_store, metrics
from payments.errors import PaymentError, ProviderUnavailable, WebhookVerificationError
from serve.problems import Problem
from serve.routes.pricing_support import json_response
from serve.services import services

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.post("/stripe", summary="Stripe events (Stripe-Signature)")
async def stripe_webhook(request: Request) -> Response:
    def verify(providers, payload: bytes):
        return providers.stripe_webhooks.verify(payload, request.headers.get("stripe-signature"))

    return await _receive(request, "stripe", verify)


@router.post("/paypal", summary="PayPal events (PAYPAL-TRANSMISSION-SIG and certificate)")
async def paypal_webhook(request: Request) -> Response:
    def verify(providers, payload: bytes):
        return providers.paypal_webhooks.verify(payload, dict(request.headers))

    return await _receive(request, "paypal", verify)


async def _receive(request: Request, provider: str, verify) -> Response:
    """Verify a delivery (off the event loop: PayPal's first one fetches its certificate over the
    network) and apply the event it carries."""
    payload = await request.body()
    audit_store.REQUEST_ID.set(request.headers.get("x-request-id"))  # on what the event changes
    payments = services(request).payments
    try:
        event = await asyncio.to_thread(verify, payments.providers, payload)
    except WebhookVerificationError as error:
        raise _refused(provider, error) from None
    except ProviderUnavailable as error:
        raise Problem(503, "provider-unavailable", "Webhooks not configured", str(error)) from None
    return await _apply(payments, event)


async def _apply(payments, event) -> Response:
    try:
        outcome = await payments.handle_event(event)
    except PaymentError as error:  # the provider could not be reached to act on it: redeliver later
        raise Problem(
            503, "provider-unavailable", "Try again later", str(error), headers={"Retry-After": "60"}
        ) from None
    kind = "duplicate" if outcome.startswith("duplicate") else "applied"
    metrics.webhook_events.inc(tags={"provider": event.provider, "outcome": kind})
    return json_response({"event_id": event.event_id, "outcome": outcome})


def _refused(provider: str, error: WebhookVerificationError) -> Problem:
    metrics.webhook_events.inc(tags={"provider": provider, "outcome": "refused"})
    return Problem(400, "invalid-signature", "Webhook refused", f"{type(error).__name__}: {error}")
