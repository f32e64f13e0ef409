"""The shared interface: request validation, and every adapter implementing it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payments.errors import InvalidAmount
from payments.gateway import ChargeRequest, PaymentGateway, RefundRequest
from payments.paypal_gateway import PayPalGateway
from payments.stripe_gateway import StripeGateway
from payments.wire import BankAccount, WireGateway
from pricing.money import Currency

USD = Currency.of("usd")


def test_every_payment_method_implements_the_gateway() -> None:
    gateways: list[PaymentGateway] = [  # mypy checks the protocol here
        StripeGateway("sk_test_x", api_base="http://127.0.0.1:9"),
        PayPalGateway(
            "id", "secret", return_url="https://r", cancel_url="https://c", base_url="http://127.0.0.1:9"
        ),
        WireGateway(BankAccount("ENIS GmbH", "DE89370400440532013000", "COBADEFFXXX", "Bank")),
    ]
    assert [gateway.name for gateway in gateways] == ["stripe", "paypal", "wire"]


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-1.00"), Decimal("NaN"), 10.0])
def test_a_charge_needs_a_positive_decimal(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        ChargeRequest("inv", "ENIS-2024-000001", amount, USD, "key")  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_every_money_moving_call_needs_an_idempotency_key(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        ChargeRequest("inv", "ENIS-2024-000001", Decimal("1.00"), USD, key)
    with pytest.raises(ValueError, match="idempotency key"):
        RefundRequest("pi_1", USD, key)


def test_a_refund_amount_when_given_is_positive() -> None:
    with pytest.raises(InvalidAmount):
        RefundRequest("pi_1", USD, "key", Decimal("0.00"))
    assert RefundRequest("pi_1", USD, "key").amount is None  # everything left
