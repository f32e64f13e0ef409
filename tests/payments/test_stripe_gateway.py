"""The Stripe adapter against the local Stripe (payments/sandbox/stripe_server.py)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from payments.errors import (
    IdempotencyConflict,
    InvalidAmount,
    InvalidPaymentRequest,
    PaymentDeclined,
    PaymentNotFound,
    ProviderAuthenticationFailed,
    ProviderUnavailable,
    RefundRejected,
)
from payments.gateway import ChargeRequest, PaymentStatus, RefundRequest
from payments.sandbox.stripe_server import SeenCharge, StripeServer
from payments.stripe_gateway import StripeGateway, stripe_amount
from pricing.money import Currency

USD = Currency.of("usd")


def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def gateway(stripe_server: StripeServer) -> StripeGateway:
    return StripeGateway(stripe_server.api_key, api_base=stripe_server.url, max_network_retries=0)


@pytest.fixture
def customer(gateway: StripeGateway) -> str:
    return gateway.create_customer("tenant-a", "billing@tenant-a.example", "Tenant A", key())


def charge_request(
    customer: str, payment_method: str, amount: str = "1234.56", currency: Currency = USD, **kw: str
) -> ChargeRequest:
    return ChargeRequest(
        invoice_id=str(uuid.uuid4()),
        invoice_number="ENIS-2024-000042",
        amount=Decimal(amount),
        currency=currency,
        idempotency_key=kw.get("idempotency_key", key()),
        customer_id=customer,
        payment_method_id=payment_method,
    )


def charges_of(server: StripeServer, intent_id: str) -> list[SeenCharge]:
    return [charge for charge in server.charges if charge.payment_intent == intent_id]


def test_an_off_session_charge_completes_with_the_exact_minor_units(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    method = gateway.attach_payment_method("pm_card_visa", customer, key())
    request = charge_request(customer, method)

    result = gateway.charge(request)

    assert result.status is PaymentStatus.COMPLETED
    assert result.amount == Decimal("1234.56") and result.currency == USD
    intent = stripe_server.intents[result.transaction_id]
    assert (intent["amount"], intent["currency"], intent["customer"]) == (123456, "usd", customer)
    assert intent["metadata"] == {"invoice_id": request.invoice_id, "invoice_number": "ENIS-2024-000042"}
    [seen] = charges_of(stripe_server, result.transaction_id)
    assert seen.succeeded and seen.amount == 123456
    # What Stripe received on the wire: confirmed off-session on the saved method.
    sent = [r for r in stripe_server.requests_seen if r.path == "/v1/payment_intents" and r.method == "POST"][
        -1
    ]
    assert b"confirm=true" in sent.body and b"off_session=true" in sent.body
    assert sent.headers["idempotency-key"] == request.idempotency_key


def test_a_retry_with_the_same_key_returns_the_same_intent_and_charges_once(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    request = charge_request(customer, "pm_card_visa")

    first = gateway.charge(request)
    second = gateway.charge(request)

    assert second.transaction_id == first.transaction_id
    assert len(charges_of(stripe_server, first.transaction_id)) == 1


def test_the_sdk_retries_a_503_with_the_same_key_and_stripe_sees_one_charge(
    stripe_server: StripeServer, customer: str
) -> None:
    retrying = StripeGateway(stripe_server.api_key, api_base=stripe_server.url, max_network_retries=2)
    before = len(stripe_server.charges)
    stripe_server.fail_next(1)

    result = retrying.charge(charge_request(customer, "pm_card_visa"))

    assert result.status is PaymentStatus.COMPLETED
    assert len(stripe_server.charges) == before + 1


def test_an_outage_is_provider_unavailable(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    stripe_server.fail_next(1)
    with pytest.raises(ProviderUnavailable):
        gateway.charge(charge_request(customer, "pm_card_visa"))


def test_an_unreachable_stripe_is_provider_unavailable() -> None:
    closed = StripeServer().start()
    url = closed.url
    closed.stop()
    gateway = StripeGateway("sk_test_local", api_base=url, max_network_retries=0)
    with pytest.raises(ProviderUnavailable):
        gateway.status("pi_anything")


@pytest.mark.parametrize(
    ("method", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
        ("pm_card_authenticationRequired", "authentication_required"),
    ],
)
def test_a_card_decline_is_payment_declined_with_stripes_decline_code(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str, method: str, decline_code: str
) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        gateway.charge(charge_request(customer, method))

    assert declined.value.decline_code == decline_code
    intent_id = declined.value.transaction_id
    assert intent_id is not None
    [seen] = charges_of(stripe_server, intent_id)
    assert not seen.succeeded
    status = gateway.status(intent_id)
    assert (status.status, status.failure_code) == (PaymentStatus.FAILED, decline_code)


def test_a_retried_decline_is_replayed_not_charged_again(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    request = charge_request(customer, "pm_card_chargeDeclined")
    with pytest.raises(PaymentDeclined) as first:
        gateway.charge(request)
    with pytest.raises(PaymentDeclined) as second:
        gateway.charge(request)
    assert second.value.transaction_id == first.value.transaction_id
    assert len(charges_of(stripe_server, first.value.transaction_id or "")) == 1


def test_a_key_reused_for_another_amount_is_an_idempotency_conflict(
    gateway: StripeGateway, customer: str
) -> None:
    shared = key()
    gateway.charge(charge_request(customer, "pm_card_visa", "10.00", idempotency_key=shared))
    with pytest.raises(IdempotencyConflict):
        gateway.charge(charge_request(customer, "pm_card_visa", "11.00", idempotency_key=shared))


def test_partial_then_full_refund_returns_exactly_what_is_left(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    charged = gateway.charge(charge_request(customer, "pm_card_visa", "100.00"))

    partial = gateway.refund(RefundRequest(charged.transaction_id, USD, key(), Decimal("30.25")))
    rest = gateway.refund(RefundRequest(charged.transaction_id, USD, key(), reason="requested_by_customer"))

    assert (partial.status, partial.amount) == (PaymentStatus.COMPLETED, Decimal("30.25"))
    assert (rest.status, rest.amount) == (PaymentStatus.COMPLETED, Decimal("69.75"))
    assert stripe_server.refunds[partial.refund_id]["amount"] == 3025
    assert stripe_server.refunds[rest.refund_id]["reason"] == "requested_by_customer"
    with pytest.raises(RefundRejected) as rejected:
        gateway.refund(RefundRequest(charged.transaction_id, USD, key()))
    assert rejected.value.code == "charge_already_refunded"


def test_a_refund_retry_with_the_same_key_refunds_once(gateway: StripeGateway, customer: str) -> None:
    charged = gateway.charge(charge_request(customer, "pm_card_visa", "50.00"))
    request = RefundRequest(charged.transaction_id, USD, key(), Decimal("20.00"))

    first = gateway.refund(request)
    again = gateway.refund(request)
    rest = gateway.refund(RefundRequest(charged.transaction_id, USD, key()))

    assert again.refund_id == first.refund_id
    assert rest.amount == Decimal("30.00")


def test_refunding_more_than_was_charged_is_rejected(gateway: StripeGateway, customer: str) -> None:
    charged = gateway.charge(charge_request(customer, "pm_card_visa", "10.00"))
    with pytest.raises(RefundRejected):
        gateway.refund(RefundRequest(charged.transaction_id, USD, key(), Decimal("10.01")))


def test_zero_decimal_and_three_decimal_currencies(
    gateway: StripeGateway, stripe_server: StripeServer, customer: str
) -> None:
    yen = gateway.charge(charge_request(customer, "pm_card_visa", "1235", Currency.of("jpy")))
    assert stripe_server.intents[yen.transaction_id]["amount"] == 1235
    assert yen.amount == Decimal(1235)
    assert stripe_amount(Decimal("5.120"), Currency.of("kwd")) == 5120
    with pytest.raises(InvalidAmount):  # Stripe wants the last of three decimals to be 0
        stripe_amount(Decimal("5.125"), Currency.of("kwd"))
    assert stripe_amount(Decimal(500), Currency.of("isk")) == 50000  # ISK counts in hundredths


def test_below_stripes_minimum_is_an_invalid_request(gateway: StripeGateway, customer: str) -> None:
    with pytest.raises(InvalidPaymentRequest) as invalid:
        gateway.charge(charge_request(customer, "pm_card_visa", "0.49"))
    assert invalid.value.code == "amount_too_small"


def test_unknown_intent_and_wrong_key(gateway: StripeGateway, stripe_server: StripeServer) -> None:
    with pytest.raises(PaymentNotFound):
        gateway.status("pi_does_not_exist")
    wrong = StripeGateway("sk_test_wrong", api_base=stripe_server.url, max_network_retries=0)
    with pytest.raises(ProviderAuthenticationFailed):
        wrong.status("pi_does_not_exist")


def test_a_charge_without_a_saved_method_is_refused_before_calling_stripe(gateway: StripeGateway) -> None:
    with pytest.raises(InvalidPaymentRequest):
        gateway.charge(charge_request("cus_x", ""))
