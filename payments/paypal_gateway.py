"""PayPal: Orders v2 (create, payer approval, capture) and capture refunds via `paypal-server-sdk`.

A PayPal invoice payment takes two steps: `charge` creates an order and returns it `pending` with
the `approval_url` the payer follows; once approved (the payer is sent back to our return URL,
or the CHECKOUT.ORDER.APPROVED webhook arrives) `capture` moves the money. A payer saved in
PayPal's vault (`payment_method_id` = vault id) is charged in one step, as Stripe's off-session
charge is. The transaction id is always the ORDER id; a refund looks up the order's capture.

Every POST carries `PayPal-Request-Id` = our idempotency key: PayPal answers a retry with the
state of what the first request created, so a retry never creates a second order or capture.

The SDK's `Environment` only knows PayPal's two hosts. `base_url` points it anywhere by
overriding `Configuration.get_base_uri`, which every controller, the OAuth token call included,
asks for its base; tests and the demo point it at the local PayPal in payments/sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from apimatic_core.exceptions.auth_validation_exception import AuthValidationException  # type: ignore[import-untyped]
from cryptography import x509
from paypalserversdk.configuration import Configuration, Server  # type: ignore[import-untyped]
from paypalserversdk.exceptions.api_exception import ApiException  # type: ignore[import-untyped]
from paypalserversdk.exceptions.o_auth_provider_exception import OAuthProviderException  # type: ignore[import-untyped]
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials  # type: ignore[import-untyped]
from paypalserversdk.models.amount_with_breakdown import AmountWithBreakdown  # type: ignore[import-untyped]
from paypalserversdk.models.checkout_payment_intent import CheckoutPaymentIntent  # type: ignore[import-untyped]
from paypalserversdk.models.money import Money as PayPalMoney  # type: ignore[import-untyped]
from paypalserversdk.models.order import Order  # type: ignore[import-untyped]
from paypalserversdk.models.order_request import OrderRequest  # type: ignore[import-untyped]
from paypalserversdk.models.payment_source import PaymentSource  # type: ignore[import-untyped]
from paypalserversdk.models.paypal_wallet import PaypalWallet  # type: ignore[import-untyped]
from paypalserversdk.models.paypal_wallet_experience_context import PaypalWalletExperienceContext  # type: ignore[import-untyped]
from paypalserversdk.models.purchase_unit_request import PurchaseUnitRequest  # type: ignore[import-untyped]
from paypalserversdk.models.refund_request import RefundRequest as PayPalRefundRequest  # type: ignore[import-untyped]
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient  # type: ignore[import-untyped]

from payments.amounts import format_major, parse_major
from payments.errors import (
    InvalidPaymentRequest,
    PaymentDeclined,
    PaymentError,
    PaymentNotFound,
    ProviderAuthenticationFailed,
    ProviderUnavailable,
    RefundRejected,
)
from payments.gateway import (
    ChargeRequest,
    ChargeResult,
    EventReading,
    PaymentProvider,
    PaymentStatus,
    RefundRequest,
    RefundResult,
    Report,
    SavedMethod,
    WebhookEvent,
)
from payments.lifecycle import PaymentState
from payments.webhooks import PAYPAL_CERT_URL_PREFIXES, PayPalWebhookVerifier
from pricing.money import Currency

if TYPE_CHECKING:
    from infra.settings import Settings

SANDBOX_URL = "https://api-m.sandbox.paypal.com"
LIVE_URL = "https://api-m.paypal.com"

# PayPal takes no decimals for these although ISO 4217 gives HUF and TWD two:
# https://developer.paypal.com/reference/currency-codes/
_EXPONENT_OVERRIDES = {"huf": 0, "twd": 0}
# 422 issues that mean the payer's funding was refused, not that our request was wrong.
_DECLINE_ISSUES = frozenset({"INSTRUMENT_DECLINED", "TRANSACTION_REFUSED", "PAYER_CANNOT_PAY"})
_CAPTURE_STATUS = {
    "COMPLETED": PaymentStatus.COMPLETED,
    "PARTIALLY_REFUNDED": PaymentStatus.COMPLETED,  # the charge did complete; refunds are separate
    "REFUNDED": PaymentStatus.COMPLETED,
    "PENDING": PaymentStatus.PENDING,
    "DECLINED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
}
_REFUND_STATUS = {
    "COMPLETED": PaymentStatus.COMPLETED,
    "PENDING": PaymentStatus.PENDING,
    "CANCELLED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
}


def paypal_exponent(currency: Currency) -> int:
    return _EXPONENT_OVERRIDES.get(currency.code, currency.digits)


def paypal_value(amount: Decimal, currency: Currency) -> str:
    """PayPal's `value` string: `"12.70"` USD, `"1235"` JPY; refused when not exact."""
    return format_major(amount, currency, paypal_exponent(currency))


class _PointedConfiguration(Configuration):  # type: ignore[misc]
    """The SDK's configuration with one base URL for every call, OAuth included."""

    def __init__(self, base_url: str, **settings: Any) -> None:
        self._base_url = base_url.rstrip("/")
        super().__init__(**settings)

    def get_base_uri(self, server: Server = Server.DEFAULT) -> str:
        return self._base_url


def _fetch_token(_previous: Any, auth: Any) -> Any:
    # Given as the SDK's token provider so that a failing token call raises: the SDK's own
    # fetch swallows the error and reports a vague "token undefined" instead.
    return auth.fetch_token()


def _error_body(error: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(error.response.text or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _issue(body: dict[str, Any]) -> str | None:
    """The first `details[].issue` of a PayPal error (`INSTRUMENT_DECLINED`), else its `name`."""
    details = body.get("details") or [{}]
    return details[0].get("issue") or body.get("name")


def _translate(error: Exception, transaction_id: str | None) -> PaymentError:
    if isinstance(error, requests.RequestException):
        return ProviderUnavailable(f"PayPal unreachable: {error}")
    if isinstance(error, (OAuthProviderException, AuthValidationException)):
        return ProviderAuthenticationFailed(f"PayPal refused our credentials: {error}")
    if not isinstance(error, ApiException):
        return PaymentError(str(error))
    status, body = error.response_code, _error_body(error)
    issue, message = _issue(body), str(body.get("message") or f"PayPal answered {status}")
    if status >= 500 or status == 429:
        return ProviderUnavailable(f"PayPal answered {status}: {message}")
    if status in (401, 403):
        return ProviderAuthenticationFailed(f"PayPal answered {status}: {message}")
    if status == 404:
        return PaymentNotFound(f"PayPal does not know {transaction_id}: {message}")
    if issue in _DECLINE_ISSUES:
        return PaymentDeclined(message, issue or "DECLINED", transaction_id)
    return InvalidPaymentRequest(message, issue)


@contextmanager
def _paypal_errors(transaction_id: str | None = None) -> Iterator[None]:
    try:
        yield
    except (requests.RequestException, ApiException, AuthValidationException) as error:
        raise _translate(error, transaction_id) from error


def _request_id(idempotency_key: str) -> str:
    if not 1 <= len(idempotency_key) <= 108:  # PayPal-Request-Id's documented maximum
        raise ValueError("PayPal needs an idempotency key of 1 to 108 characters")
    return idempotency_key


def _first(items: Any) -> Any:
    return items[0] if items else None


def _capture_of(order: Order) -> Any:
    unit = _first(getattr(order, "purchase_units", None))
    payments = getattr(unit, "payments", None)
    return _first(getattr(payments, "captures", None))


class PayPalGateway:
    """The `paypal` payment method."""

    name = "paypal"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        return_url: str,
        cancel_url: str,
        base_url: str = SANDBOX_URL,
        brand_name: str | None = None,
        timeout_s: int = 30,
    ) -> None:
        credentials = ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id, o_auth_client_secret=client_secret, o_auth_token_provider=_fetch_token
        )
        config = _PointedConfiguration(
            base_url, timeout=timeout_s, max_retries=0, client_credentials_auth_credentials=credentials
        )
        self._client = PaypalServersdkClient(config=config)
        self._return_url = return_url
        self._cancel_url = cancel_url
        self._brand_name = brand_name

    def charge(self, request: ChargeRequest) -> ChargeResult:
        unit = PurchaseUnitRequest(
            amount=AmountWithBreakdown(
                currency_code=request.currency.code.upper(),
                value=paypal_value(request.amount, request.currency),
            ),
            reference_id=request.invoice_id,
            custom_id=request.invoice_id,
            invoice_id=request.invoice_number,  # PayPal refuses a second capture for one invoice_id
            description=(request.description or f"Invoice {request.invoice_number}")[:127],
        )
        body = OrderRequest(
            intent=CheckoutPaymentIntent.CAPTURE, purchase_units=[unit], payment_source=self._source(request)
        )
        options = {
            "body": body,
            "paypal_request_id": _request_id(request.idempotency_key),
            "prefer": "return=representation",
        }
        with _paypal_errors():
            order = self._client.orders.create_order(options).body
        return self._order_result(order)

    def capture(self, order_id: str, idempotency_key: str) -> ChargeResult:
        """Capture an approved order. An order captured already is reported, not captured again."""
        options = {
            "id": order_id,
            "paypal_request_id": _request_id(idempotency_key),
            "prefer": "return=representation",
        }
        try:
            with _paypal_errors(order_id):
                order = self._client.orders.capture_order(options).body
        except InvalidPaymentRequest as error:
            if error.code != "ORDER_ALREADY_CAPTURED":
                raise
            return self.status(order_id)
        return self._order_result(order)

    def status(self, transaction_id: str) -> ChargeResult:
        return self._order_result(self._order(transaction_id))

    def refund(self, request: RefundRequest) -> RefundResult:
        capture = _capture_of(self._order(request.transaction_id))
        if capture is None:
            raise RefundRejected(f"order {request.transaction_id} was never captured", "NOT_CAPTURED")
        body = PayPalRefundRequest(note_to_payer=request.reason) if request.reason else PayPalRefundRequest()
        if request.amount is not None:
            body.amount = PayPalMoney(
                currency_code=request.currency.code.upper(),
                value=paypal_value(request.amount, request.currency),
            )
        options = {
            "capture_id": capture.id,
            "body": body,
            "paypal_request_id": _request_id(request.idempotency_key),
            "prefer": "return=representation",
        }
        try:
            with _paypal_errors(request.transaction_id):
                refund = self._client.payments.refund_captured_payment(options).body
                if getattr(refund, "amount", None) is None:  # a minimal answer; the refund has it
                    refund = self._client.payments.get_refund({"refund_id": refund.id}).body
        except InvalidPaymentRequest as error:
            raise RefundRejected(error.message, error.code) from error
        money = refund.amount
        currency = Currency.of(money.currency_code)
        return RefundResult(
            provider=self.name,
            refund_id=str(refund.id),
            transaction_id=request.transaction_id,
            status=_REFUND_STATUS.get(str(refund.status), PaymentStatus.PENDING),
            amount=parse_major(money.value, currency, paypal_exponent(currency)),
            currency=currency,
        )

    def _source(self, request: ChargeRequest) -> PaymentSource:
        if request.payment_method_id:
            return PaymentSource(paypal=PaypalWallet(vault_id=request.payment_method_id))
        context: dict[str, Any] = {
            "return_url": self._return_url,
            "cancel_url": self._cancel_url,
            "user_action": "PAY_NOW",
            "shipping_preference": "NO_SHIPPING",
        }
        if self._brand_name:
            context["brand_name"] = self._brand_name
        return PaymentSource(paypal=PaypalWallet(experience_context=PaypalWalletExperienceContext(**context)))

    def _order(self, order_id: str) -> Order:
        with _paypal_errors(order_id):
            return self._client.orders.get_order({"id": order_id}).body

    def _order_result(self, order: Order) -> ChargeResult:
        capture = _capture_of(order)
        if order.status == "COMPLETED" and capture is not None:
            status = _CAPTURE_STATUS.get(str(capture.status), PaymentStatus.PENDING)
        else:
            status = PaymentStatus.FAILED if order.status == "VOIDED" else PaymentStatus.PENDING
        money = capture.amount if capture is not None else _first(order.purchase_units).amount
        currency = Currency.of(money.currency_code)
        links = getattr(order, "links", None) or []
        approval = next((link.href for link in links if link.rel in ("payer-action", "approve")), None)
        return ChargeResult(
            provider=self.name,
            transaction_id=str(order.id),
            status=status,
            amount=parse_major(money.value, currency, paypal_exponent(currency)),
            currency=currency,
            approval_url=approval if status is PaymentStatus.PENDING else None,
            failure_code=str(capture.status)
            if status is PaymentStatus.FAILED and capture is not None
            else None,
        )


# --- registration: what the provider-neutral payments code needs to know of PayPal ------------

_EVENT_STATES = {
    "PAYMENT.CAPTURE.COMPLETED": PaymentState.COMPLETED,
    "PAYMENT.CAPTURE.DENIED": PaymentState.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentState.FAILED,
}


def read_event(event: WebhookEvent) -> EventReading:
    """A PayPal event as a report on its order; an approved order is to be captured."""
    order = event.related_ids.get("order_id") or (
        event.object_id if event.object_type == "checkout-order" else None
    )
    if event.type == "CHECKOUT.ORDER.APPROVED":
        return EventReading(order, approved=True)
    return EventReading(order, Report(_EVENT_STATES.get(event.type)))


def _gateway(settings: Settings) -> PayPalGateway:
    s = settings
    if not (s.paypal_client_id and s.paypal_client_secret):
        raise ProviderUnavailable("PayPal is not configured (PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET)")
    return PayPalGateway(
        s.paypal_client_id,
        s.paypal_client_secret,
        return_url=f"{s.resolved_public_url()}/paypal/return",
        cancel_url=f"{s.resolved_public_url()}/paypal/cancel",
        base_url=s.paypal_base_url or SANDBOX_URL,
        brand_name=s.issuer,
    )


def _webhooks(settings: Settings) -> PayPalWebhookVerifier:
    s = settings
    if not s.paypal_webhook_id:
        raise ProviderUnavailable("PayPal webhooks are not configured (PAYPAL_WEBHOOK_ID)")
    prefixes = PAYPAL_CERT_URL_PREFIXES + ((s.paypal_cert_url_prefix,) if s.paypal_cert_url_prefix else ())
    roots = (
        x509.load_pem_x509_certificates(Path(s.paypal_root_certificate).read_bytes())
        if s.paypal_root_certificate
        else ()
    )
    return PayPalWebhookVerifier(s.paypal_webhook_id, trusted_roots=roots, cert_url_prefixes=prefixes)


PAYPAL = PaymentProvider(
    name=PayPalGateway.name,
    display_name="PayPal",
    saved_method=SavedMethod.OPTIONAL,  # a vaulted payer is charged at once; others approve first
    gateway=_gateway,
    webhooks=_webhooks,
    read_event=read_event,
)
