"""The PayPal adapter against the local PayPal (payments/sandbox/paypal_server.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

import pytest

from payments.errors import (
    InvalidAmount,
    InvalidPaymentRequest,
    PaymentDeclined,
    PaymentNotFound,
    ProviderAuthenticationFailed,
    ProviderUnavailable,
    RefundRejected,
)
from payments.gateway import ChargeRequest, PaymentStatus, RefundRequest
from payments.paypal_gateway import PayPalGateway, paypal_value
from payments.sandbox.paypal_server import PayPalServer, SeenCapture
from pricing.money import Currency

USD = Currency.of("usd")
RETURN_URL = "https://billing.example/paypal/return"
CANCEL_URL = "https://billing.example/paypal/cancel"


def key() -> str:
    return uuid.uuid4().hex


def make_gateway(server: PayPalServer, secret: str | None = None) -> PayPalGateway:
    return PayPalGateway(
        server.client_id,
        secret or server.client_secret,
        base_url=server.url,
        return_url=RETURN_URL,
        cancel_url=CANCEL_URL,
    )


@pytest.fixture
def gateway(paypal_server: PayPalServer) -> PayPalGateway:
    return make_gateway(paypal_server)


def charge_request(
    amount: str = "250.40",
    currency: Currency = USD,
    vault_id: str | None = None,
    idempotency_key: str | None = None,
) -> ChargeRequest:
    return ChargeRequest(
        invoice_id=str(uuid.uuid4()),
        invoice_number=f"ENIS-2024-{uuid.uuid4().int % 10**6:06d}",
        amount=Decimal(amount),
        currency=currency,
        idempotency_key=idempotency_key or key(),
        payment_method_id=vault_id,
    )


def captures_of(server: PayPalServer, order_id: str) -> list[SeenCapture]:
    return [capture for capture in server.charges if capture.order_id == order_id]


def test_an_order_waits_for_the_payer_then_captures_the_exact_amount(
    gateway: PayPalGateway, paypal_server: PayPalServer
) -> None:
    request = charge_request("250.40")

    created = gateway.charge(request)

    assert created.status is PaymentStatus.PENDING
    assert created.approval_url == f"{paypal_server.url}/checkoutnow?token={created.transaction_id}"
    sent = json.loads(
        next(r.body for r in reversed(paypal_server.requests_seen) if r.path == "/v2/checkout/orders")
    )
    unit = sent["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "USD", "value": "250.40"}
    assert (unit["custom_id"], unit["invoice_id"]) == (request.invoice_id, request.invoice_number)
    assert sent["payment_source"]["paypal"]["experience_context"]["return_url"] == RETURN_URL

    paypal_server.approve(created.transaction_id)
    captured = gateway.capture(created.transaction_id, key())

    assert (captured.status, captured.amount, captured.approval_url) == (
        PaymentStatus.COMPLETED,
        Decimal("250.40"),
        None,
    )
    [seen] = captures_of(paypal_server, created.transaction_id)
    assert seen.succeeded and seen.value == Decimal("250.40") and seen.currency == "USD"
    assert gateway.status(created.transaction_id).status is PaymentStatus.COMPLETED


def test_following_the_approval_link_approves_the_order(
    gateway: PayPalGateway, paypal_server: PayPalServer
) -> None:
    created = gateway.charge(charge_request())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:  # the payer is sent back to our return URL
        opener.open(created.approval_url or "")
    assert redirect.value.code == 302
    assert redirect.value.headers["Location"].startswith(f"{RETURN_URL}?token={created.transaction_id}")
    assert gateway.capture(created.transaction_id, key()).status is PaymentStatus.COMPLETED


def test_retries_with_the_same_request_id_create_one_order_and_one_capture(
    gateway: PayPalGateway, paypal_server: PayPalServer
) -> None:
    request = charge_request()
    first = gateway.charge(request)
    orders_before = len(paypal_server.orders)
    again = gateway.charge(request)
    assert again.transaction_id == first.transaction_id
    assert len(paypal_server.orders) == orders_before

    paypal_server.approve(first.transaction_id)
    capture_key = key()
    gateway.capture(first.transaction_id, capture_key)
    retried = gateway.capture(first.transaction_id, capture_key)
    other_key = gateway.capture(first.transaction_id, key())  # ORDER_ALREADY_CAPTURED, reported as done

    assert retried.status is other_key.status is PaymentStatus.COMPLETED
    assert len(captures_of(paypal_server, first.transaction_id)) == 1


def test_the_oauth_token_is_fetched_from_the_local_server_once(paypal_server: PayPalServer) -> None:
    gateway = make_gateway(paypal_server)
    before = paypal_server.tokens_issued
    gateway.charge(charge_request())
    gateway.charge(charge_request())
    assert paypal_server.tokens_issued == before + 1
    token_calls = [r for r in paypal_server.requests_seen if r.path == "/v1/oauth2/token"]
    assert token_calls and token_calls[-1].body == b"grant_type=client_credentials"


def test_a_vaulted_payer_is_charged_in_one_step(gateway: PayPalGateway, paypal_server: PayPalServer) -> None:
    result = gateway.charge(charge_request("1235", Currency.of("jpy"), vault_id="8GZ67612RS0396316"))

    assert (result.status, result.amount) == (PaymentStatus.COMPLETED, Decimal(1235))
    [seen] = captures_of(paypal_server, result.transaction_id)
    assert (seen.value, seen.currency) == (Decimal(1235), "JPY")


def test_a_declined_instrument_is_payment_declined(
    gateway: PayPalGateway, paypal_server: PayPalServer
) -> None:
    created = gateway.charge(charge_request())
    paypal_server.approve(created.transaction_id, declined=True)

    with pytest.raises(PaymentDeclined) as declined:
        gateway.capture(created.transaction_id, key())

    assert declined.value.decline_code == "INSTRUMENT_DECLINED"
    assert declined.value.transaction_id == created.transaction_id
    [seen] = captures_of(paypal_server, created.transaction_id)
    assert not seen.succeeded


def test_capturing_before_approval_is_an_invalid_request(gateway: PayPalGateway) -> None:
    created = gateway.charge(charge_request())
    with pytest.raises(InvalidPaymentRequest) as invalid:
        gateway.capture(created.transaction_id, key())
    assert invalid.value.code == "ORDER_NOT_APPROVED"


def test_partial_then_full_refund(gateway: PayPalGateway, paypal_server: PayPalServer) -> None:
    created = gateway.charge(charge_request("80.00"))
    paypal_server.approve(created.transaction_id)
    gateway.capture(created.transaction_id, key())

    partial = gateway.refund(RefundRequest(created.transaction_id, USD, key(), Decimal("12.34")))
    rest = gateway.refund(RefundRequest(created.transaction_id, USD, key(), reason="duplicate invoice"))

    assert (partial.status, partial.amount) == (PaymentStatus.COMPLETED, Decimal("12.34"))
    assert (rest.status, rest.amount) == (PaymentStatus.COMPLETED, Decimal("67.66"))
    assert paypal_server.refunds[rest.refund_id]["note_to_payer"] == "duplicate invoice"
    with pytest.raises(RefundRejected) as rejected:
        gateway.refund(RefundRequest(created.transaction_id, USD, key()))
    assert rejected.value.code == "CAPTURE_FULLY_REFUNDED"


def test_refund_retry_and_over_refund(gateway: PayPalGateway, paypal_server: PayPalServer) -> None:
    created = gateway.charge(charge_request("20.00"))
    paypal_server.approve(created.transaction_id)
    gateway.capture(created.transaction_id, key())
    request = RefundRequest(created.transaction_id, USD, key(), Decimal("5.00"))

    first = gateway.refund(request)
    again = gateway.refund(request)

    assert again.refund_id == first.refund_id
    with pytest.raises(RefundRejected) as rejected:
        gateway.refund(RefundRequest(created.transaction_id, USD, key(), Decimal("15.01")))
    assert rejected.value.code == "REFUND_AMOUNT_EXCEEDED"


def test_a_minimal_refund_answer_is_completed_from_the_refund_itself() -> None:
    with PayPalServer() as server:
        server.honour_prefer = False
        gateway = make_gateway(server)
        created = gateway.charge(charge_request("20.00"))
        server.approve(created.transaction_id)
        gateway.capture(created.transaction_id, key())

        refund = gateway.refund(RefundRequest(created.transaction_id, USD, key()))

    assert (refund.amount, refund.status) == (Decimal("20.00"), PaymentStatus.COMPLETED)
    assert any(r.path == f"/v2/payments/refunds/{refund.refund_id}" for r in server.requests_seen)


def test_refunding_an_uncaptured_order_is_rejected(gateway: PayPalGateway) -> None:
    created = gateway.charge(charge_request())
    with pytest.raises(RefundRejected):
        gateway.refund(RefundRequest(created.transaction_id, USD, key()))


def test_paypal_values_use_paypals_decimals() -> None:
    assert paypal_value(Decimal("12.7"), USD) == "12.70"
    assert paypal_value(Decimal(1235), Currency.of("jpy")) == "1235"
    assert paypal_value(Decimal(1500), Currency.of("huf")) == "1500"  # PayPal: HUF takes no decimals
    with pytest.raises(InvalidAmount):
        paypal_value(Decimal("1500.50"), Currency.of("huf"))


def test_errors_have_meaning(gateway: PayPalGateway, paypal_server: PayPalServer) -> None:
    with pytest.raises(PaymentNotFound):
        gateway.status("NOSUCHORDER00000")
    with pytest.raises(ProviderAuthenticationFailed):
        make_gateway(paypal_server, secret="wrong").charge(charge_request())
    with pytest.raises(InvalidPaymentRequest) as unsupported:
        gateway.charge(charge_request("10.000", Currency.of("kwd")))
    assert unsupported.value.code == "CURRENCY_NOT_SUPPORTED"
    paypal_server.fail_next(1)
    with pytest.raises(ProviderUnavailable):
        gateway.charge(charge_request())


def test_an_unreachable_paypal_is_provider_unavailable() -> None:
    closed = PayPalServer().start()
    url = closed.url
    closed.stop()
    gateway = PayPalGateway("id", "secret", base_url=url, return_url=RETURN_URL, cancel_url=CANCEL_URL)
    with pytest.raises(ProviderUnavailable):  # the OAuth token call is the first to fail
        gateway.charge(charge_request())
