"""A local Stripe API for tests and the demo: the requests our adapter sends, answered as Stripe does.

Supported (form-encoded bodies, `Authorization: Bearer <api_key>`):
- `POST /v1/customers`, `POST /v1/payment_methods/{id}/attach`
- `POST /v1/payment_intents` with `amount`, `currency`, `customer`, `payment_method`, `confirm`,
  `off_session`, `metadata[...]`; `GET /v1/payment_intents/{id}`
- `POST /v1/refunds` with `payment_intent` (or `charge`) and an optional partial `amount`

Stripe's test PaymentMethods decide the outcome (https://docs.stripe.com/testing):
`pm_card_visa`, `pm_card_mastercard`, `pm_card_amex` succeed; `pm_card_chargeDeclined`,
`pm_card_chargeDeclinedInsufficientFunds`, `pm_card_chargeDeclinedExpiredCard` and, off-session,
`pm_card_authenticationRequired` fail with Stripe's 402 `card_error` body. `Idempotency-Key` is
honoured as Stripe does: the first response (a decline included) is replayed with
`Idempotent-Replayed: true`, the same key with other parameters is a 400 `idempotency_error`.

`charges` records every charge attempt the "card network" saw; `events` every event Stripe would
send, which `signed_event` signs exactly as Stripe does (`Stripe-Signature: t=…,v1=HMAC-SHA256`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from payments.sandbox.local_http import LocalHTTPServer, Request, Response, post_webhook

# token -> None (succeeds) or (code, decline_code, message) as Stripe's 402 body carries them
TEST_CARDS: dict[str, tuple[str, str, str] | None] = {
    "pm_card_visa": None,
    "pm_card_mastercard": None,
    "pm_card_amex": None,
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_authenticationRequired": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}
_BRANDS = {"pm_card_mastercard": "mastercard", "pm_card_amex": "amex"}
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts (a few of them)
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "jpy": 50}


@dataclass(frozen=True, slots=True)
class SeenCharge:
    """One charge attempt: what a test asserts when it says "Stripe saw one charge"."""

    charge_id: str
    payment_intent: str
    amount: int
    currency: str
    payment_method: str
    succeeded: bool
    decline_code: str | None


def decode_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (`metadata[invoice_id]=…`, `types[0]=card`) to nested values."""
    decoded: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        target = decoded
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return decoded


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def _error(status: int, kind: str, message: str, **extra: Any) -> Response:
    return Response.json(status, {"error": {"type": kind, "message": message, **extra}})


def _missing(kind: str, object_id: str, param: str) -> Response:
    message = f"No such {kind}: '{object_id}'"
    return _error(404, "invalid_request_error", message, code="resource_missing", param=param)


class StripeServer(LocalHTTPServer):
    def __init__(
        self, api_key: str = "sk_test_local", webhook_secret: str = "whsec_local", port: int = 0
    ) -> None:
        super().__init__(port)
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.charges: list[SeenCharge] = []
        self.events: list[dict[str, Any]] = []
        self._refunded: dict[str, int] = {}  # charge id -> amount refunded
        self._idempotent: dict[str, tuple[tuple[str, str, str], Response]] = {}

    # -- HTTP ---------------------------------------------------------------------------------

    def unavailable(self, status: int) -> Response:
        return _error(status, "api_error", "Stripe is temporarily unavailable (injected).")

    def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided.")
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key:
            return self._route(request)
        fingerprint = (request.method, request.path, json.dumps(decode_form(request.body), sort_keys=True))
        if key in self._idempotent:
            seen, response = self._idempotent[key]
            if seen != fingerprint:
                return _error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                )
            return Response(
                response.status, response.body, {**response.headers, "Idempotent-Replayed": "true"}
            )
        response = self._route(request)
        if response.status < 500:  # Stripe does not save the result of a request that errored inside
            self._idempotent[key] = (fingerprint, response)
        return response

    def _route(self, request: Request) -> Response:
        params = decode_form(request.body) if request.method == "POST" else request.query
        path = request.path.rstrip("/")
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", r"/v1/customers", self._create_customer),
            ("POST", r"/v1/payment_methods/(?P<pm>[^/]+)/attach", self._attach),
            ("POST", r"/v1/payment_intents", self._create_intent),
            ("GET", r"/v1/payment_intents/(?P<pi>[^/]+)", self._get_intent),
            ("POST", r"/v1/refunds", self._create_refund),
        ]
        for method, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return action(params, **match.groupdict())
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({request.method}: {path}).")

    # -- resources ----------------------------------------------------------------------------

    def _create_customer(self, params: dict[str, Any]) -> Response:
        customer = {
            "id": _new_id("cus"),
            "object": "customer",
            "email": params.get("email"),
            "name": params.get("name"),
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
            "livemode": False,
        }
        self.customers[customer["id"]] = customer
        return Response.json(200, customer)

    def _attach(self, params: dict[str, Any], pm: str) -> Response:
        customer = params.get("customer")
        if customer not in self.customers:
            return _missing("customer", str(customer), "customer")
        if pm not in TEST_CARDS:
            return _missing("PaymentMethod", pm, "payment_method")
        method = {
            "id": _new_id("pm"),
            "object": "payment_method",
            "type": "card",
            "card": {"brand": _BRANDS.get(pm, "visa"), "last4": "4242"},
            "customer": customer,
            "test_token": pm,  # not Stripe's: remembers which test card decides the outcome
        }
        self.payment_methods[method["id"]] = method
        return Response.json(200, {k: v for k, v in method.items() if k != "test_token"})

    def _create_intent(self, params: dict[str, Any]) -> Response:
        try:
            amount = int(params.get("amount", ""))
        except ValueError:
            return _error(400, "invalid_request_error", "Invalid integer: amount", param="amount")
        currency = str(params.get("currency", "")).lower()
        if amount < MINIMUM_CHARGE.get(currency, 1):
            message = "Amount must be at least the minimum charge amount for the currency."
            return _error(400, "invalid_request_error", message, code="amount_too_small", param="amount")
        customer = params.get("customer")
        if customer is not None and customer not in self.customers:
            return _missing("customer", customer, "customer")
        intent: dict[str, Any] = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "customer": customer,
            "payment_method": params.get("payment_method"),
            "description": params.get("description"),
            "metadata": params.get("metadata", {}),
            "status": "requires_confirmation" if params.get("payment_method") else "requires_payment_method",
            "latest_charge": None,
            "last_payment_error": None,
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "livemode": False,
        }
        self.intents[intent["id"]] = intent
        if _truthy(params.get("confirm")):
            return self._confirm(intent, off_session=_truthy(params.get("off_session")))
        return Response.json(200, intent)

    def _confirm(self, intent: dict[str, Any], off_session: bool) -> Response:
        pm = str(intent["payment_method"])
        token = self.payment_methods[pm]["test_token"] if pm in self.payment_methods else pm
        if token not in TEST_CARDS:
            del self.intents[intent["id"]]
            return _missing("PaymentMethod", pm, "payment_method")
        outcome = TEST_CARDS[token]
        if outcome is not None and outcome[0] == "authentication_required" and not off_session:
            intent["status"] = "requires_action"  # on-session, the customer would do 3-D Secure now
            return Response.json(200, intent)
        charge_id = _new_id("ch")
        intent["latest_charge"] = charge_id
        decline_code = outcome[1] if outcome else None
        self.charges.append(
            SeenCharge(
                charge_id, intent["id"], intent["amount"], intent["currency"], pm, not outcome, decline_code
            )
        )
        if outcome is None:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self.record_event("payment_intent.succeeded", intent)
            return Response.json(200, intent)
        code, decline_code, message = outcome
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": charge_id,
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        }
        intent.update(status="requires_payment_method", last_payment_error=error)
        self.record_event("payment_intent.payment_failed", intent)
        return Response.json(402, {"error": {**error, "payment_intent": intent}})

    def _get_intent(self, params: dict[str, Any], pi: str) -> Response:
        if pi not in self.intents:
            return _missing("payment_intent", pi, "intent")
        return Response.json(200, self.intents[pi])

    def _create_refund(self, params: dict[str, Any]) -> Response:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None and params.get("charge"):
            intent = next((i for i in self.intents.values() if i["latest_charge"] == params["charge"]), None)
        if intent is None:
            return _missing("payment_intent", str(params.get("payment_intent")), "payment_intent")
        if intent["status"] != "succeeded":
            message = "This PaymentIntent does not have a successful charge to refund."
            return _error(400, "invalid_request_error", message, param="payment_intent")
        charge = intent["latest_charge"]
        left = intent["amount_received"] - self._refunded.get(charge, 0)
        if left == 0:
            message = f"Charge {charge} has already been refunded."
            return _error(400, "invalid_request_error", message, code="charge_already_refunded")
        amount = int(params.get("amount", left))
        if not 0 < amount <= left:
            message = f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            return _error(400, "invalid_request_error", message, param="amount")
        self._refunded[charge] = self._refunded.get(charge, 0) + amount
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "charge": charge,
            "payment_intent": intent["id"],
            "reason": params.get("reason"),
            "status": "succeeded",
            "metadata": params.get("metadata", {}),
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        self.record_event(
            "charge.refunded", {"id": charge, "object": "charge", "payment_intent": intent["id"]}
        )
        return Response.json(200, refund)

    # -- webhooks -----------------------------------------------------------------------------

    def record_event(self, event_type: str, data_object: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(data_object))},  # a snapshot, as Stripe sends
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self.events.append(event)
        return event

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """The `Stripe-Signature` header: `t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<payload>"))`."""
        stamp = int(time.time()) if timestamp is None else timestamp
        signed = f"{stamp}.".encode() + payload
        digest = hmac.new((secret or self.webhook_secret).encode(), signed, hashlib.sha256).hexdigest()
        return f"t={stamp},v1={digest}"

    def signed_event(
        self, event: dict[str, Any], timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Stripe would POST to a webhook endpoint for `event`."""
        payload = json.dumps(event, indent=2).encode()  # Stripe pretty-prints its webhook bodies
        return payload, {
            "Content-Type": "application/json",
            "Stripe-Signature": self.sign(payload, timestamp),
        }

    def deliver(self, event: dict[str, Any], url: str) -> int:
        """POST a signed event to a webhook endpoint; returns the HTTP status."""
        return post_webhook(url, *self.signed_event(event))
