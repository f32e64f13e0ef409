"""Webhook verification with payloads signed by the local providers exactly as the real ones sign."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization

from payments.errors import ForgedWebhook, MalformedWebhook, StaleWebhook
from payments.gateway import ChargeRequest
from payments.paypal_gateway import PayPalGateway
from payments.sandbox.paypal_server import PayPalServer
from payments.sandbox.stripe_server import StripeServer
from payments.stripe_gateway import StripeGateway
from payments.webhooks import PayPalWebhookVerifier, StripeWebhookVerifier
from pricing.money import Currency

USD = Currency.of("usd")

# -- Stripe ----------------------------------------------------------------------------------


@pytest.fixture
def stripe_event(stripe_server: StripeServer) -> dict:
    """A real `payment_intent.succeeded` event, from a charge through the adapter."""
    gateway = StripeGateway(stripe_server.api_key, api_base=stripe_server.url, max_network_retries=0)
    request = ChargeRequest(
        str(uuid.uuid4()), "ENIS-2024-000777", Decimal("42.00"), USD, uuid.uuid4().hex, None, "pm_card_visa"
    )
    result = gateway.charge(request)
    return next(
        event
        for event in stripe_server.events
        if event["type"] == "payment_intent.succeeded"
        and event["data"]["object"]["id"] == result.transaction_id
    )


@pytest.fixture
def stripe_verifier(stripe_server: StripeServer) -> StripeWebhookVerifier:
    return StripeWebhookVerifier(stripe_server.webhook_secret, tolerance_s=300)


def test_a_signed_stripe_event_is_verified_and_parsed(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier, stripe_event: dict
) -> None:
    payload, headers = stripe_server.signed_event(stripe_event)

    event = stripe_verifier.verify(payload, headers["Stripe-Signature"])

    intent = stripe_event["data"]["object"]
    assert (event.provider, event.event_id, event.type) == (
        "stripe",
        stripe_event["id"],
        "payment_intent.succeeded",
    )
    assert (event.object_type, event.object_id) == ("payment_intent", intent["id"])
    assert event.related_ids["invoice_id"] == intent["metadata"]["invoice_id"]
    assert event.related_ids["invoice_number"] == "ENIS-2024-000777"
    assert event.created == datetime.fromtimestamp(stripe_event["created"], UTC)


def test_the_stripe_client_verifies_the_same_way(stripe_server: StripeServer, stripe_event: dict) -> None:
    client = StripeGateway(stripe_server.api_key, api_base=stripe_server.url).client
    verifier = StripeWebhookVerifier(stripe_server.webhook_secret, client=client)
    payload, headers = stripe_server.signed_event(stripe_event)
    assert verifier.verify(payload, headers["Stripe-Signature"]).event_id == stripe_event["id"]


def test_a_stripe_event_signed_with_another_secret_is_forged(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier, stripe_event: dict
) -> None:
    payload = json.dumps(stripe_event).encode()
    with pytest.raises(ForgedWebhook):
        stripe_verifier.verify(payload, stripe_server.sign(payload, secret="whsec_attacker"))


def test_a_tampered_stripe_body_is_forged(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier, stripe_event: dict
) -> None:
    payload, headers = stripe_server.signed_event(stripe_event)
    tampered = payload.replace(b'"amount": 4200', b'"amount": 1')
    assert tampered != payload
    with pytest.raises(ForgedWebhook):
        stripe_verifier.verify(tampered, headers["Stripe-Signature"])


def test_a_stale_stripe_signature_is_stale_not_forged(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier, stripe_event: dict
) -> None:
    payload, headers = stripe_server.signed_event(stripe_event, timestamp=int(time.time()) - 301)
    with pytest.raises(StaleWebhook):
        stripe_verifier.verify(payload, headers["Stripe-Signature"])
    fresh_enough, headers = stripe_server.signed_event(stripe_event, timestamp=int(time.time()) - 250)
    assert stripe_verifier.verify(fresh_enough, headers["Stripe-Signature"]).event_id == stripe_event["id"]


def test_a_stripe_signature_dated_in_the_future_is_refused(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier, stripe_event: dict
) -> None:
    # Issue 15: the SDK bounds only the age, so one signed an hour ahead was accepted.
    payload, headers = stripe_server.signed_event(stripe_event, timestamp=int(time.time()) + 3600)
    with pytest.raises(StaleWebhook, match="future"):
        stripe_verifier.verify(payload, headers["Stripe-Signature"])
    near, headers = stripe_server.signed_event(stripe_event, timestamp=int(time.time()) + 250)
    assert stripe_verifier.verify(near, headers["Stripe-Signature"]).event_id == stripe_event["id"]


@pytest.mark.parametrize("header", [None, "", "garbage", "t=123", "v1=abc"])
def test_a_missing_or_broken_stripe_header_is_forged(
    stripe_verifier: StripeWebhookVerifier, header: str | None
) -> None:
    with pytest.raises(ForgedWebhook):
        stripe_verifier.verify(b'{"id": "evt_1"}', header)


def test_a_signed_stripe_body_that_is_not_an_event_is_malformed(
    stripe_server: StripeServer, stripe_verifier: StripeWebhookVerifier
) -> None:
    payload = b'{"id": "evt_1", "type": "x"}'
    with pytest.raises(MalformedWebhook):
        stripe_verifier.verify(payload, stripe_server.sign(payload))


# -- PayPal ----------------------------------------------------------------------------------


@pytest.fixture
def paypal_event(paypal_server: PayPalServer) -> dict:
    """A real PAYMENT.CAPTURE.COMPLETED event, from an order captured through the adapter."""
    gateway = PayPalGateway(
        paypal_server.client_id,
        paypal_server.client_secret,
        base_url=paypal_server.url,
        return_url="https://billing.example/r",
        cancel_url="https://billing.example/c",
    )
    request = ChargeRequest(str(uuid.uuid4()), "ENIS-2024-000888", Decimal("9.99"), USD, uuid.uuid4().hex)
    order_id = gateway.charge(request).transaction_id
    paypal_server.approve(order_id)
    gateway.capture(order_id, uuid.uuid4().hex)
    return next(
        event
        for event in paypal_server.events
        if event["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
        and event["resource"].get("supplementary_data", {}).get("related_ids", {}).get("order_id") == order_id
    )


def paypal_verifier(server: PayPalServer, **overrides: object) -> PayPalWebhookVerifier:
    settings: dict = {
        "trusted_roots": [server.root_certificate],
        "cert_url_prefixes": [f"{server.url}/v1/notifications/certs/"],
        **overrides,
    }
    return PayPalWebhookVerifier(server.webhook_id, **settings)


def test_a_signed_paypal_event_is_verified_and_parsed(
    paypal_server: PayPalServer, paypal_event: dict
) -> None:
    payload, headers = paypal_server.signed_event(paypal_event)

    event = paypal_verifier(paypal_server).verify(payload, headers)

    capture = paypal_event["resource"]
    assert (event.provider, event.event_id, event.type) == (
        "paypal",
        paypal_event["id"],
        "PAYMENT.CAPTURE.COMPLETED",
    )
    assert (event.object_type, event.object_id) == ("capture", capture["id"])
    assert event.related_ids["order_id"] == capture["supplementary_data"]["related_ids"]["order_id"]
    assert (event.related_ids["invoice_id"], event.related_ids["invoice_number"]) == (
        capture["custom_id"],
        "ENIS-2024-000888",
    )


def test_paypal_headers_are_case_insensitive(paypal_server: PayPalServer, paypal_event: dict) -> None:
    payload, headers = paypal_server.signed_event(paypal_event)
    lowered = {name.lower(): value for name, value in headers.items()}
    assert paypal_verifier(paypal_server).verify(payload, lowered).event_id == paypal_event["id"]


def test_a_tampered_paypal_body_is_forged(paypal_server: PayPalServer, paypal_event: dict) -> None:
    payload, headers = paypal_server.signed_event(paypal_event)
    tampered = payload.replace(b'"value": "9.99"', b'"value": "0.01"')
    assert tampered != payload
    with pytest.raises(ForgedWebhook, match="signature"):
        paypal_verifier(paypal_server).verify(tampered, headers)


def test_a_paypal_signature_for_another_webhook_id_is_forged(
    paypal_server: PayPalServer, paypal_event: dict
) -> None:
    payload = json.dumps(paypal_event).encode()
    headers = paypal_server.sign(payload, webhook_id="SOMEONEELSES")
    with pytest.raises(ForgedWebhook):
        paypal_verifier(paypal_server).verify(payload, headers)


def test_a_stale_paypal_transmission_is_stale(paypal_server: PayPalServer, paypal_event: dict) -> None:
    payload, headers = paypal_server.signed_event(paypal_event, datetime.now(UTC) - timedelta(minutes=6))
    with pytest.raises(StaleWebhook):
        paypal_verifier(paypal_server).verify(payload, headers)


def test_a_cert_url_off_paypals_hosts_is_refused_before_fetching(
    paypal_server: PayPalServer, paypal_event: dict
) -> None:
    payload, headers = paypal_server.signed_event(paypal_event)
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return b""

    verifier = PayPalWebhookVerifier(paypal_server.webhook_id, fetch=fetch)
    with pytest.raises(ForgedWebhook, match="not a PayPal address"):
        verifier.verify(payload, headers)  # default prefixes: only https://api*.paypal.com
    assert fetched == []


def test_a_certificate_from_an_untrusted_root_is_refused(
    paypal_server: PayPalServer, paypal_event: dict
) -> None:
    payload = json.dumps(paypal_event).encode()
    with PayPalServer() as impostor:  # a certificate with PayPal's name, issued by its own CA
        headers = impostor.sign(payload, webhook_id=paypal_server.webhook_id)
    impostor_pem = impostor.certificate.public_bytes(serialization.Encoding.PEM)
    verifier = paypal_verifier(
        paypal_server, cert_url_prefixes=["https://api.paypal.com/"], fetch=lambda url: impostor_pem
    )
    headers["PAYPAL-CERT-URL"] = "https://api.paypal.com/v1/notifications/certs/CERT-impostor"
    with pytest.raises(ForgedWebhook, match="trusted root"):
        verifier.verify(payload, headers)


@pytest.mark.parametrize(
    "header", ["PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"]
)
def test_a_missing_paypal_header_is_forged(
    paypal_server: PayPalServer, paypal_event: dict, header: str
) -> None:
    payload, headers = paypal_server.signed_event(paypal_event)
    del headers[header]
    with pytest.raises(ForgedWebhook):
        paypal_verifier(paypal_server).verify(payload, headers)


def test_a_changed_transmission_time_is_forged(paypal_server: PayPalServer, paypal_event: dict) -> None:
    payload, headers = paypal_server.signed_event(paypal_event, datetime.now(UTC) - timedelta(hours=1))
    headers["PAYPAL-TRANSMISSION-TIME"] = datetime.now(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )  # a replay, re-dated
    with pytest.raises(ForgedWebhook):
        paypal_verifier(paypal_server).verify(payload, headers)
