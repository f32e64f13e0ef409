"""Stripe: off-session PaymentIntents on a saved PaymentMethod, and refunds, via `StripeClient`.

An invoice is charged without the customer present (`off_session=True, confirm=True`), so the
PaymentIntent either succeeds, fails with a card error (raised as `PaymentDeclined` with Stripe's
decline code), or stays pending (`processing`, e.g. a SEPA debit). Redirect-based methods are
excluded (`allow_redirects: never`): nobody is there to follow a redirect.

Every POST carries our idempotency key as `Idempotency-Key`; Stripe replays the first response to
a retry with the same key, declines included, so a retry never charges twice. The SDK retries
connection errors and 5xx itself (`max_network_retries`) with that same key.

`api_base` points the client elsewhere (`StripeClient(base_addresses={"api": ...})`): the local
Stripe in payments/sandbox, or stripe-mock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import stripe

from payments.amounts import from_minor_units, to_minor_units
from payments.errors import (
    IdempotencyConflict,
    InvalidAmount,
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
from payments.webhooks import StripeWebhookVerifier
from pricing.money import Currency

if TYPE_CHECKING:
    from infra.settings import Settings

# Stripe counts ISK in hundredths although ISO 4217 gives it no minor unit, and wants the last
# digit of three-decimal amounts to be 0: https://docs.stripe.com/currencies#special-cases
_EXPONENT_OVERRIDES = {"isk": 2}
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

_INTENT_STATUS = {
    "succeeded": PaymentStatus.COMPLETED,
    "canceled": PaymentStatus.FAILED,
    "processing": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.PENDING,
    "requires_capture": PaymentStatus.PENDING,
    "requires_confirmation": PaymentStatus.PENDING,
}
_REFUND_STATUS = {
    "succeeded": PaymentStatus.COMPLETED,
    "pending": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.PENDING,
    "failed": PaymentStatus.FAILED,
    "canceled": PaymentStatus.FAILED,
}
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


def stripe_exponent(currency: Currency) -> int:
    return _EXPONENT_OVERRIDES.get(currency.code, currency.digits)


def stripe_amount(amount: Decimal, currency: Currency) -> int:
    """The integer `amount` Stripe expects for a major-unit Decimal, refused when not exact."""
    minor = to_minor_units(amount, currency, stripe_exponent(currency))
    if currency.code in _THREE_DECIMAL and minor % 10:
        raise InvalidAmount(f"Stripe needs {currency.code.upper()} amounts in whole hundredths: {amount}")
    if currency.code == "isk" and minor % 100:
        raise InvalidAmount(f"Stripe charges ISK in whole krónur only: {amount}")
    return minor


def _declined(error: stripe.CardError) -> PaymentDeclined:
    document = error.json_body if isinstance(error.json_body, dict) else {}
    body: Mapping[str, Any] = document.get("error") or {}
    intent = body.get("payment_intent") or {}
    code = body.get("decline_code") or error.code or "card_declined"
    return PaymentDeclined(body.get("message") or str(error), code, intent.get("id"))


def _translate(error: stripe.StripeError) -> PaymentError:
    """Stripe's error classes (https://docs.stripe.com/error-handling) to ours."""
    if isinstance(error, stripe.CardError):
        return _declined(error)
    if isinstance(error, stripe.IdempotencyError):
        return IdempotencyConflict(str(error))
    if isinstance(error, stripe.InvalidRequestError):
        if error.http_status == 404 or error.code == "resource_missing":
            return PaymentNotFound(str(error))
        return InvalidPaymentRequest(error.user_message or str(error), error.code)
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        return ProviderAuthenticationFailed(str(error))
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)):
        return ProviderUnavailable(str(error))
    return PaymentError(str(error))


@contextmanager
def _stripe_errors() -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as error:
        raise _translate(error) from error


class StripeGateway:
    """The `stripe` payment method."""

    name = "stripe"

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_s: float = 30,
    ) -> None:
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )

    @property
    def client(self) -> stripe.StripeClient:
        """The SDK client, e.g. for `construct_event` in `payments.webhooks`."""
        return self._client

    def create_customer(self, tenant_id: str, email: str, name: str, idempotency_key: str) -> str:
        """A Stripe customer for a tenant; the id is stored with the tenant."""
        params: Any = {"email": email, "name": name, "metadata": {"tenant_id": tenant_id}}
        with _stripe_errors():
            customer = self._client.v1.customers.create(params, {"idempotency_key": idempotency_key})
        return str(customer.id)

    def attach_payment_method(self, payment_method_id: str, customer_id: str, idempotency_key: str) -> str:
        """Attach a PaymentMethod (collected by Stripe.js) to a customer; returns its id."""
        params: Any = {"customer": customer_id}
        with _stripe_errors():
            method = self._client.v1.payment_methods.attach(
                payment_method_id, params, {"idempotency_key": idempotency_key}
            )
        return str(method.id)

    def charge(self, request: ChargeRequest) -> ChargeResult:
        if not request.payment_method_id:
            raise InvalidPaymentRequest("an off-session Stripe charge needs a saved payment method")
        params: Any = {
            "amount": stripe_amount(request.amount, request.currency),
            "currency": request.currency.code,
            "payment_method": request.payment_method_id,
            "confirm": True,
            "off_session": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
            "description": request.description or f"Invoice {request.invoice_number}",
            "metadata": {"invoice_id": request.invoice_id, "invoice_number": request.invoice_number},
        }
        if request.customer_id:
            params["customer"] = request.customer_id
        with _stripe_errors():
            intent = self._client.v1.payment_intents.create(
                params, {"idempotency_key": request.idempotency_key}
            )
        return self._charge_result(intent)

    def status(self, transaction_id: str) -> ChargeResult:
        with _stripe_errors():
            intent = self._client.v1.payment_intents.retrieve(transaction_id)
        return self._charge_result(intent)

    def refund(self, request: RefundRequest) -> RefundResult:
        params: Any = {"payment_intent": request.transaction_id}
        if request.amount is not None:
            params["amount"] = stripe_amount(request.amount, request.currency)
        if request.reason in _REFUND_REASONS:  # Stripe refuses any other reason value
            params["reason"] = request.reason
        try:
            with _stripe_errors():
                refund = self._client.v1.refunds.create(params, {"idempotency_key": request.idempotency_key})
        except InvalidPaymentRequest as error:  # over-refunds and refunds of refunded charges
            raise RefundRejected(error.message, error.code) from error
        currency = Currency.of(refund.currency)
        return RefundResult(
            provider=self.name,
            refund_id=str(refund.id),
            transaction_id=request.transaction_id,
            status=_REFUND_STATUS.get(str(refund.status), PaymentStatus.PENDING),
            amount=from_minor_units(refund.amount, currency, stripe_exponent(currency)),
            currency=currency,
        )

    def _charge_result(self, intent: stripe.PaymentIntent) -> ChargeResult:
        currency = Currency.of(intent.currency)
        error = intent.last_payment_error
        if intent.status == "requires_payment_method":
            # Back to square one: after a failed attempt this is a failure, before any attempt
            # it is still waiting for a payment method.
            status = PaymentStatus.FAILED if error else PaymentStatus.PENDING
        else:
            status = _INTENT_STATUS.get(intent.status, PaymentStatus.PENDING)
        failure = (error.decline_code or error.code) if error and status is PaymentStatus.FAILED else None
        return ChargeResult(
            provider=self.name,
            transaction_id=str(intent.id),
            status=status,
            amount=from_minor_units(intent.amount, currency, stripe_exponent(currency)),
            currency=currency,
            failure_code=failure,
        )


# --- registration: what the provider-neutral payments code needs to know of Stripe ------------

_EVENT_STATES = {
    "payment_intent.succeeded": PaymentState.COMPLETED,
    "payment_intent.payment_failed": PaymentState.FAILED,
    "payment_intent.processing": PaymentState.PENDING,
}


def read_event(event: WebhookEvent) -> EventReading:
    """A Stripe event as a report on the PaymentIntent it concerns (refunds in Stripe's units)."""
    intent = event.related_ids.get("payment_intent") or (
        event.object_id if event.object_type == "payment_intent" else None
    )
    obj = event.payload.get("data", {}).get("object", {})
    if event.type == "charge.refunded":
        currency = Currency.of(obj["currency"])
        refunded = from_minor_units(int(obj["amount_refunded"]), currency, stripe_exponent(currency))
        return EventReading(intent, Report(None, refunded=refunded))
    error = obj.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code")
    return EventReading(intent, Report(_EVENT_STATES.get(event.type), failure_code=code))


@dataclass(frozen=True)
class _SignedBy:
    """The verifier reading its one header (`Stripe-Signature`) from the request's headers."""

    verifier: StripeWebhookVerifier

    def verify(self, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return self.verifier.verify(payload, headers.get("stripe-signature"))


def _gateway(settings: Settings) -> StripeGateway:
    if not settings.stripe_api_key:
        raise ProviderUnavailable("Stripe is not configured (STRIPE_API_KEY)")
    return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)


def _webhooks(settings: Settings) -> _SignedBy:
    if not settings.stripe_webhook_secret:
        raise ProviderUnavailable("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
    return _SignedBy(StripeWebhookVerifier(settings.stripe_webhook_secret))


STRIPE = PaymentProvider(
    name=StripeGateway.name,
    display_name="Stripe",
    saved_method=SavedMethod.REQUIRED,  # off-session charges: nobody is there to enter a card
    gateway=_gateway,
    webhooks=_webhooks,
    read_event=read_event,
)
