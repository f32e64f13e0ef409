"""The one interface every payment method implements: charge, status, refund.

Amounts are `Decimal` in major units with their `Currency`; each adapter converts them to the
provider's minor units itself (`payments.amounts`), exactly. Every call that moves money carries
an idempotency key that the caller derives from its own payment row, so a retry after a timeout
or a crash is the same request to the provider and can never charge or refund twice. Reading a
status moves no money and needs no key.

Outcomes the caller must act on differently are exceptions (`payments.errors`); a result's
`status` is what the provider says now: `pending` (waiting for the payer, the bank or a capture),
`completed` (money moved), `failed` (it will not move without a new attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from payments.errors import InvalidAmount
from pricing.money import Currency


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


def _require_idempotency_key(key: str) -> None:
    if not key or len(key) > 255:  # Stripe's limit; PayPal allows 108 and is checked there
        raise ValueError("an idempotency key of 1 to 255 characters is required")


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Charge `amount` (major units) of an invoice.

    `customer_id` and `payment_method_id` name a payer saved at the provider (a Stripe customer
    and PaymentMethod, a PayPal vault id); without them PayPal sends the payer to approve.
    """

    invoice_id: str
    invoice_number: str
    amount: Decimal
    currency: Currency
    idempotency_key: str
    customer_id: str | None = None
    payment_method_id: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _require_idempotency_key(self.idempotency_key)
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount <= 0:
            raise InvalidAmount(f"a charge needs a positive Decimal amount, got {self.amount!r}")


@dataclass(frozen=True, slots=True)
class ChargeResult:
    """What the provider says about a charge now.

    `transaction_id` is the id to ask about it later (Stripe PaymentIntent, PayPal order, the
    wire's RF reference). `approval_url` is where a PayPal payer approves; `instructions` is the
    text a wire payer needs. `failure_code` says why a `failed` charge failed.
    """

    provider: str
    transaction_id: str
    status: PaymentStatus
    amount: Decimal
    currency: Currency
    approval_url: str | None = None
    instructions: str | None = None
    failure_code: str | None = None


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """Refund `amount` (major units) of a completed charge, or all that is left when None."""

    transaction_id: str
    currency: Currency
    idempotency_key: str
    amount: Decimal | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        _require_idempotency_key(self.idempotency_key)
        if self.amount is not None and (
            not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount <= 0
        ):
            raise InvalidAmount(f"a refund needs a positive Decimal amount, got {self.amount!r}")


@dataclass(frozen=True, slots=True)
class RefundResult:
    provider: str
    refund_id: str
    transaction_id: str
    status: PaymentStatus
    amount: Decimal
    currency: Currency


class PaymentGateway(Protocol):
    """A payment method: `stripe`, `paypal` or `wire` (design.md §4 `payment_method`)."""

    @property
    def name(self) -> str: ...

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def status(self, transaction_id: str) -> ChargeResult: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...
