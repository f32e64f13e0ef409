"""A local PayPal REST API for tests and the demo: OAuth, Orders v2, captures, refunds, webhooks.

Supported:
- `POST /v1/oauth2/token` (client credentials, HTTP Basic) and a Bearer token on every API call
- `POST /v2/checkout/orders` (intent CAPTURE; a payer-action link to approve, or with
  `payment_source.paypal.vault_id` captured at once), `GET /v2/checkout/orders/{id}`
- `POST /v2/checkout/orders/{id}/capture`: 422 `ORDER_NOT_APPROVED`, `ORDER_ALREADY_CAPTURED`,
  `INSTRUMENT_DECLINED` as PayPal answers them
- `POST /v2/payments/captures/{id}/refund`, full or partial (a minimal answer unless
  `Prefer: return=representation`); 422 `REFUND_AMOUNT_EXCEEDED`, `CAPTURE_FULLY_REFUNDED`;
  `GET /v2/payments/refunds/{id}`
- `PayPal-Request-Id`: a retried POST gets the resource's current state (200), not a second one
- `GET /checkoutnow?token={order}`: the payer approving in the browser (`approve()` does the same
  from code; `&outcome=declined` or `approve(id, declined=True)` makes the capture fail;
  `&outcome=cancelled` is the payer cancelling: back to the order's cancel URL, unapproved)
- `GET /v1/notifications/certs/{name}`: the certificate webhooks are signed with

`charges` records every capture attempt; `events` every webhook PayPal would send
(CHECKOUT.ORDER.APPROVED, PAYMENT.CAPTURE.COMPLETED, PAYMENT.CAPTURE.REFUNDED), which
`signed_event` signs as PayPal does: SHA256withRSA over
`<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body, decimal>`, with the
certificate (issued by `root_certificate`, a local CA) at `PAYPAL-CERT-URL`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from payments.sandbox.local_http import LocalHTTPServer, Request, Response, post_webhook

# https://developer.paypal.com/reference/currency-codes/ : HUF, JPY and TWD take no decimals
CURRENCY_DECIMALS = {
    **dict.fromkeys(
        [
            "AUD",
            "BRL",
            "CAD",
            "CNY",
            "CZK",
            "DKK",
            "EUR",
            "HKD",
            "ILS",
            "MYR",
            "MXN",
            "NZD",
            "NOK",
            "PHP",
            "PLN",
            "GBP",
            "SGD",
            "SEK",
            "CHF",
            "THB",
            "USD",
        ],
        2,
    ),
    **dict.fromkeys(["HUF", "JPY", "TWD"], 0),
}
LEAF_COMMON_NAME = "messageverificationcerts.sandbox.paypal.com"
CERT_NAME = "CERT-360caa42-fca2a594-local"


@dataclass(frozen=True, slots=True)
class SeenCapture:
    """One capture attempt: "PayPal saw one charge"."""

    capture_id: str | None
    order_id: str
    value: Decimal
    currency: str
    succeeded: bool


def _paypal_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(17))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, name: str, message: str, issue: str | None = None) -> Response:
    body: dict[str, Any] = {"name": name, "message": message, "debug_id": secrets.token_hex(6)}
    if issue:
        body["details"] = [{"issue": issue, "description": message}]
        body["links"] = [
            {
                "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ]
    return Response.json(status, body)


def _unprocessable(issue: str, message: str) -> Response:
    return _error(422, "UNPROCESSABLE_ENTITY", message, issue)


def _not_found() -> Response:
    return _error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.", "INVALID_RESOURCE_ID")


def _amount(document: Any) -> tuple[Decimal, str] | Response:
    """A PayPal `{currency_code, value}` checked as PayPal checks it."""
    currency = str((document or {}).get("currency_code", ""))
    if currency not in CURRENCY_DECIMALS:
        return _unprocessable("CURRENCY_NOT_SUPPORTED", f"Currency code {currency!r} is not supported.")
    text = str(document.get("value", ""))
    if not re.fullmatch(r"\d{1,10}(\.\d+)?", text):
        return _error(400, "INVALID_REQUEST", "Request is not well-formed.", "INVALID_PARAMETER_VALUE")
    if len(text.partition(".")[2]) > CURRENCY_DECIMALS[currency]:
        return _error(400, "INVALID_REQUEST", f"Bad {currency} amount {text}.", "DECIMAL_PRECISION")
    return Decimal(text), currency


def _money(value: Decimal, currency: str) -> dict[str, str]:
    digits = CURRENCY_DECIMALS[currency]
    return {"currency_code": currency, "value": format(value.quantize(Decimal(1).scaleb(-digits)), "f")}


def _issue_certificates() -> tuple[rsa.RSAPrivateKey, x509.Certificate, x509.Certificate]:
    """A local root CA and the leaf certificate webhooks are signed with."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Local PayPal Test Root CA")])
    start = datetime.now(UTC) - timedelta(days=1)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LEAF_COMMON_NAME)]))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    return leaf_key, leaf, root


class PayPalServer(LocalHTTPServer):
    def __init__(
        self,
        client_id: str = "local-client-id",
        client_secret: str = "local-secret",
        webhook_id: str = "1WH000LOCAL",
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.orders: dict[str, dict[str, Any]] = {}
        self.captures: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.charges: list[SeenCapture] = []
        self.events: list[dict[str, Any]] = []
        self.tokens_issued = 0
        self.honour_prefer = True  # False: minimal refund answers whatever the client asks
        self._tokens: set[str] = set()
        self._declining: set[str] = set()  # orders approved with an instrument that will decline
        self._refunded: dict[str, Decimal] = {}
        self._idempotent: dict[tuple[str, str], Response | tuple[str, str]] = {}
        self.signing_key, self.certificate, self.root_certificate = _issue_certificates()

    @property
    def cert_url(self) -> str:
        return f"{self.url}/v1/notifications/certs/{CERT_NAME}"

    # -- HTTP ---------------------------------------------------------------------------------

    def unavailable(self, status: int) -> Response:
        return _error(status, "INTERNAL_SERVICE_ERROR", "An internal service error has occurred.")

    def handle(self, request: Request) -> Response:
        if request.path == "/v1/oauth2/token":
            return self._token(request)
        if request.path == "/checkoutnow":
            return self._checkout_page(request)
        if request.path == f"/v1/notifications/certs/{CERT_NAME}":
            pem = self.certificate.public_bytes(serialization.Encoding.PEM)
            return Response(200, pem, {"Content-Type": "application/x-pem-file"})
        authorization = request.headers.get("authorization", "")
        if authorization.removeprefix("Bearer ") not in self._tokens:
            message = "Authentication failed due to invalid authentication credentials or a missing header."
            return _error(401, "AUTHENTICATION_FAILURE", message)
        request_id = request.headers.get("paypal-request-id")
        if request.method == "POST" and request_id:
            return self._idempotently(request, request_id)
        return self._route(request)

    def _idempotently(self, request: Request, request_id: str) -> Response:
        """PayPal answers a retry with the CURRENT state of what the first request made."""
        seen = self._idempotent.get((request.path, request_id))
        if isinstance(seen, Response):
            return seen
        if seen is not None:
            kind, object_id = seen
            resource = self._view(self.orders[object_id]) if kind == "order" else self.refunds[object_id]
            return Response.json(200, resource)
        response = self._route(request)
        if 200 <= response.status < 300:
            kind = "refund" if request.path.endswith("/refund") else "order"
            self._idempotent[(request.path, request_id)] = (kind, json.loads(response.body)["id"])
        elif response.status < 500:
            self._idempotent[(request.path, request_id)] = response
        return response

    def _route(self, request: Request) -> Response:
        path, post = request.path.rstrip("/"), request.method == "POST"
        if post and path == "/v2/checkout/orders":
            return self._create_order(request)
        if match := re.fullmatch(r"/v2/checkout/orders/([A-Z0-9]+)", path):
            order = self.orders.get(match[1])
            return Response.json(200, self._view(order)) if order else _not_found()
        if post and (match := re.fullmatch(r"/v2/checkout/orders/([A-Z0-9]+)/capture", path)):
            return self._capture(match[1])
        if post and (match := re.fullmatch(r"/v2/payments/captures/([A-Z0-9]+)/refund", path)):
            return self._refund(match[1], request.json(), request.headers.get("prefer", ""))
        if match := re.fullmatch(r"/v2/payments/refunds/([A-Z0-9]+)", path):
            refund = self.refunds.get(match[1])
            return Response.json(200, refund) if refund else _not_found()
        return _not_found()

    def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Response.json(
                401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
            )
        if b"grant_type=client_credentials" not in request.body:
            return Response.json(
                400, {"error": "unsupported_grant_type", "error_description": "Grant type is null"}
            )
        token = f"A21AA{secrets.token_urlsafe(24)}"
        self._tokens.add(token)
        self.tokens_issued += 1
        document = {
            "scope": "https://uri.paypal.com/services/payments/payment",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": 32400,
            "nonce": f"{_now()}{secrets.token_hex(8)}",
        }
        return Response.json(200, document)

    # -- orders -------------------------------------------------------------------------------

    def _create_order(self, request: Request) -> Response:
        body = request.json()
        units = body.get("purchase_units") or []
        if body.get("intent") != "CAPTURE" or not units:
            return _error(400, "INVALID_REQUEST", "Request is not well-formed.", "MISSING_REQUIRED_PARAMETER")
        parsed = _amount(units[0].get("amount"))
        if isinstance(parsed, Response):
            return parsed
        value, currency = parsed
        order_id = _paypal_id()
        paypal_source = (body.get("payment_source") or {}).get("paypal") or {}
        unit = {
            key: units[0][key]
            for key in ("reference_id", "custom_id", "invoice_id", "description")
            if key in units[0]
        }
        order: dict[str, Any] = {
            "id": order_id,
            "intent": "CAPTURE",
            "status": "CREATED",
            "purchase_units": [{**unit, "amount": _money(value, currency)}],
            "payment_source": {"paypal": {}},
            "create_time": _now(),
            "links": self._order_links(order_id, "payer-action" if paypal_source else "approve"),
            "_value": value,  # removed from every answer
        }
        self.orders[order_id] = order
        if paypal_source.get("vault_id"):
            if not request.headers.get("paypal-request-id"):  # mandatory for a single-step order
                del self.orders[order_id]
                return _error(
                    400, "INVALID_REQUEST", "PayPal-Request-Id is required.", "PAYPAL_REQUEST_ID_REQUIRED"
                )
            order["status"] = "APPROVED"
            return self._capture(order_id)
        if paypal_source.get("experience_context"):
            order["status"] = "PAYER_ACTION_REQUIRED"
            order["_return_url"] = paypal_source["experience_context"].get("return_url")
            order["_cancel_url"] = paypal_source["experience_context"].get("cancel_url")
        return Response.json(201, self._view(order))

    def _order_links(self, order_id: str, approve_rel: str) -> list[dict[str, str]]:
        return [
            {"href": f"{self.url}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"},
            {"href": f"{self.url}/checkoutnow?token={order_id}", "rel": approve_rel, "method": "GET"},
            {"href": f"{self.url}/v2/checkout/orders/{order_id}/capture", "rel": "capture", "method": "POST"},
        ]

    def _view(self, order: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in order.items() if not key.startswith("_")}

    def approve(self, order_id: str, declined: bool = False) -> None:
        """The payer logs in and approves the order (with a funding source that will decline)."""
        with self._lock:
            order = self.orders[order_id]
            order["status"] = "APPROVED"
            order["payer"] = {"payer_id": _paypal_id()[:13], "email_address": "payer@example.com"}
            if declined:
                self._declining.add(order_id)
            self.record_event("CHECKOUT.ORDER.APPROVED", "checkout-order", self._view(order))

    def _checkout_page(self, request: Request) -> Response:
        order = self.orders.get(request.query.get("token", ""))
        if order is None:
            return Response(404, b"unknown order")
        if request.query.get("outcome") == "cancelled" and order.get("_cancel_url"):
            # The payer cancels on PayPal's page: back to the cancel URL, the order unapproved.
            return Response(302, b"", {"Location": f"{order['_cancel_url']}?token={order['id']}"})
        order["status"] = "APPROVED"
        if request.query.get("outcome") == "declined":
            self._declining.add(order["id"])
        self.record_event("CHECKOUT.ORDER.APPROVED", "checkout-order", self._view(order))
        return_url = order.get("_return_url")
        if return_url:
            return Response(302, b"", {"Location": f"{return_url}?token={order['id']}&PayerID=LOCALPAYER"})
        return Response(
            200, b"<p>Order approved. You can close this window.</p>", {"Content-Type": "text/html"}
        )

    def _capture(self, order_id: str) -> Response:
        order = self.orders.get(order_id)
        if order is None:
            return _not_found()
        if order["status"] == "COMPLETED":
            return _unprocessable("ORDER_ALREADY_CAPTURED", "Order already captured.")
        if order["status"] != "APPROVED":
            return _unprocessable("ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment.")
        unit = order["purchase_units"][0]
        value, currency = order["_value"], unit["amount"]["currency_code"]
        if order_id in self._declining:
            self.charges.append(SeenCapture(None, order_id, value, currency, succeeded=False))
            message = "The instrument presented was either declined by the processor or bank."
            return _unprocessable("INSTRUMENT_DECLINED", message)
        capture: dict[str, Any] = {
            "id": _paypal_id(),
            "status": "COMPLETED",
            "amount": unit["amount"],
            "final_capture": True,
            "custom_id": unit.get("custom_id"),
            "invoice_id": unit.get("invoice_id"),
            "seller_protection": {"status": "ELIGIBLE"},
            "create_time": _now(),
            "update_time": _now(),
            "supplementary_data": {"related_ids": {"order_id": order_id}},
        }
        capture["links"] = [
            {"href": f"{self.url}/v2/payments/captures/{capture['id']}", "rel": "self", "method": "GET"},
            {
                "href": f"{self.url}/v2/payments/captures/{capture['id']}/refund",
                "rel": "refund",
                "method": "POST",
            },
        ]
        self.captures[capture["id"]] = capture
        self.charges.append(SeenCapture(capture["id"], order_id, value, currency, succeeded=True))
        order["status"] = "COMPLETED"
        unit["payments"] = {"captures": [capture]}
        self.record_event("PAYMENT.CAPTURE.COMPLETED", "capture", capture)
        return Response.json(201, self._view(order))

    def _refund(self, capture_id: str, body: dict[str, Any], prefer: str) -> Response:
        capture = self.captures.get(capture_id)
        if capture is None:
            return _not_found()
        currency = capture["amount"]["currency_code"]
        left = Decimal(capture["amount"]["value"]) - self._refunded.get(capture_id, Decimal(0))
        if left == 0:
            return _unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
        value = left
        if body.get("amount"):
            parsed = _amount(body["amount"])
            if isinstance(parsed, Response):
                return parsed
            value = parsed[0]
            if parsed[1] != currency:
                return _unprocessable("REFUND_CURRENCY_MISMATCH", "Refund must be in the capture's currency.")
            if value > left:
                message = (
                    "The refund amount must be less than or equal to the capture amount not yet refunded."
                )
                return _unprocessable("REFUND_AMOUNT_EXCEEDED", message)
        self._refunded[capture_id] = self._refunded.get(capture_id, Decimal(0)) + value
        capture["status"] = "REFUNDED" if value == left else "PARTIALLY_REFUNDED"
        refund: dict[str, Any] = {
            "id": _paypal_id(),
            "status": "COMPLETED",
            "amount": _money(value, currency),
            "invoice_id": body.get("invoice_id"),
            "note_to_payer": body.get("note_to_payer"),
            "create_time": _now(),
            "update_time": _now(),
            "links": [
                {"href": f"{self.url}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"}
            ],
        }
        self.refunds[refund["id"]] = refund
        self.record_event("PAYMENT.CAPTURE.REFUNDED", "refund", refund)
        if "return=representation" not in prefer or not self.honour_prefer:  # PayPal's default is minimal
            return Response.json(201, {key: refund[key] for key in ("id", "status", "links")})
        return Response.json(201, refund)

    # -- webhooks -----------------------------------------------------------------------------

    def record_event(self, event_type: str, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        event = {
            "id": f"WH-{_paypal_id()}-{_paypal_id()}",
            "event_version": "1.0",
            "create_time": _now(),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"{event_type} (local PayPal)",
            "resource": json.loads(json.dumps(resource)),
        }
        self.events.append(event)
        return event

    def sign(
        self,
        payload: bytes,
        transmission_time: datetime | None = None,
        webhook_id: str | None = None,
    ) -> dict[str, str]:
        """The headers PayPal sends with a webhook: the signature over id|time|webhook id|CRC32."""
        transmission_id = str(uuid.uuid1())
        stamp = (transmission_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"{transmission_id}|{stamp}|{webhook_id or self.webhook_id}|{zlib.crc32(payload)}"
        signature = self.signing_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {
            "Content-Type": "application/json",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": stamp,
            "PAYPAL-TRANSMISSION-SIG": binascii.b2a_base64(signature, newline=False).decode(),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    def signed_event(
        self, event: dict[str, Any], transmission_time: datetime | None = None
    ) -> tuple[bytes, dict[str, str]]:
        payload = json.dumps(event).encode()
        return payload, self.sign(payload, transmission_time)

    def deliver(self, event: dict[str, Any], url: str) -> int:
        """POST a signed event to a webhook endpoint; returns the HTTP status."""
        return post_webhook(url, *self.signed_event(event))
