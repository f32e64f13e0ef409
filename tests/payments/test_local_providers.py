"""The local providers themselves: usable without pytest, and delivering verifiable webhooks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from payments.errors import WebhookVerificationError
from payments.sandbox.local_http import LocalHTTPServer, Request, Response
from payments.sandbox.paypal_server import PayPalServer
from payments.sandbox.stripe_server import StripeServer
from payments.webhooks import PayPalWebhookVerifier, StripeWebhookVerifier, WebhookEvent

ROOT = Path(__file__).resolve().parents[2]


def test_the_servers_import_and_run_without_pytest() -> None:
    script = (
        "import sys; sys.modules['pytest'] = None\n"  # any `import pytest` now fails
        "from payments.sandbox.stripe_server import StripeServer\n"
        "from payments.sandbox.paypal_server import PayPalServer\n"
        "from payments.sandbox.vault_server import VaultServer\n"
        "for server in (StripeServer(), PayPalServer(), VaultServer()):\n"
        "    server.start(); assert server.url.startswith('http://127.0.0.1:'); server.stop()\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)


class WebhookReceiver(LocalHTTPServer):
    """An endpoint that answers 200 for a verified webhook and 400 otherwise, as ours will."""

    def __init__(self, verify: Callable[[Request], WebhookEvent]) -> None:
        super().__init__()
        self.verify = verify
        self.accepted: list[WebhookEvent] = []

    def handle(self, request: Request) -> Response:
        try:
            self.accepted.append(self.verify(request))
        except WebhookVerificationError as error:
            return Response.json(400, {"detail": str(error)})
        return Response(200)


def test_stripe_delivers_events_our_verifier_accepts(stripe_server: StripeServer) -> None:
    verifier = StripeWebhookVerifier(stripe_server.webhook_secret)
    event = stripe_server.record_event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    with WebhookReceiver(lambda r: verifier.verify(r.body, r.headers.get("stripe-signature"))) as receiver:
        assert stripe_server.deliver(event, f"{receiver.url}/webhooks/stripe") == 200
        forged = StripeServer(webhook_secret="whsec_other")
        assert forged.deliver(event, f"{receiver.url}/webhooks/stripe") == 400
    assert [accepted.event_id for accepted in receiver.accepted] == [event["id"]]


def test_paypal_delivers_events_our_verifier_accepts(paypal_server: PayPalServer) -> None:
    verifier = PayPalWebhookVerifier(
        paypal_server.webhook_id,
        trusted_roots=[paypal_server.root_certificate],
        cert_url_prefixes=[f"{paypal_server.url}/v1/notifications/certs/"],
    )
    event = paypal_server.record_event("PAYMENT.CAPTURE.COMPLETED", "capture", {"id": "3C679366HH908993F"})
    with WebhookReceiver(lambda r: verifier.verify(r.body, r.headers)) as receiver:
        assert paypal_server.deliver(event, f"{receiver.url}/webhooks/paypal") == 200
    [accepted] = receiver.accepted
    assert (accepted.event_id, accepted.object_id) == (event["id"], "3C679366HH908993F")
