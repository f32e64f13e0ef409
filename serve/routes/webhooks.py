"""Provider webhooks, one route per registered provider that sends them
(`POST /api/v1/webhooks/<provider>`): verified by signature (no JWT: the provider is the caller),
each event applied once by its id. A forged or stale delivery gets 400 and changes nothing; a
replay gets 200 so the provider stops resending it."""

# No `from __future__ import annotations` here: the handlers are made in a function, and FastAPI
# (through Ray Serve's ingress) must see `Request` as a class, not a string to resolve.
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from payments import providers, webhook_intake
from payments.errors import PaymentError, WebhookVerificationError
from serve.problems import Problem
from serve.routes.pricing_support import json_response
from serve.services import services

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


def _receiver(provider: str) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        payload = await request.body()  # raw: a body parsed and re-serialised is not what was signed
        try:
            outcome = await webhook_intake.receive_event(
                services(request).payments,
                provider,
                payload,
                request.headers,
                request.headers.get("x-request-id"),
            )
        except WebhookVerificationError as error:
            detail = f"{type(error).__name__}: {error}"
            raise Problem(400, "invalid-signature", "Webhook refused", detail) from None
        except webhook_intake.CannotVerify as error:
            raise Problem(503, "provider-unavailable", "Webhooks not configured", str(error)) from None
        except PaymentError as error:  # the provider could not be reached to act on it: redeliver later
            raise Problem(
                503, "provider-unavailable", "Try again later", str(error), headers={"Retry-After": "60"}
            ) from None
        return json_response({"event_id": outcome.event_id, "outcome": outcome.outcome})

    return receive


for _provider in providers.with_webhooks():
    router.add_api_route(
        f"/{_provider.name}",
        _receiver(_provider.name),
        methods=["POST"],
        name=f"{_provider.name}_webhook",
        summary=f"{_provider.display_name} events, verified by their signature",
    )
