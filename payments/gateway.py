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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from payments.errors import InvalidAmount
from payments.lifecycle import PaymentState
from pricing.money import Currency

if TYPE_CHECKING:
    from infra.settings import Settings


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


def _require_idempotency_key(key: str) -> None:
    if not key or len(key) > 255:  # the longest any provider takes; adapters check their own limits
        raise ValueError("an idempotency key of 1 to 255 characters is required")


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """Charge `amount` (major units) of an invoice.

    `customer_id` and `payment_method_id` name a payer saved at the provider (a customer and its
    saved method, a vault id); without them a provider may send the payer to approve.
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

    `transaction_id` is the id to ask about it later (the provider's intent or order, a bank
    transfer's reference). `approval_url` is where a payer approves; `instructions` is the text a
    payer needs to pay by themselves. `failure_code` says why a `failed` charge failed.
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
    """A payment method (design.md §4 `payment_method`); each provider's adapter implements it."""

    @property
    def name(self) -> str: ...

    def charge(self, request: ChargeRequest) -> ChargeResult: ...

    def status(self, transaction_id: str) -> ChargeResult: ...

    def refund(self, request: RefundRequest) -> RefundResult: ...


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified event: what happened (`type`) to which provider object.

    `related_ids` names the other objects the provider's `read_event` needs (its intent, charge or
    order ids) and ours when the provider echoes them back (`invoice_id`, `invoice_number`).
    """

    provider: str
    event_id: str
    type: str
    created: datetime
    object_type: str
    object_id: str
    related_ids: Mapping[str, str]
    payload: Mapping[str, Any]


@runtime_checkable
class CapturesApprovals(Protocol):
    """A method whose charge waits for the payer's approval, then is captured by us."""

    def capture(self, transaction_id: str, idempotency_key: str) -> ChargeResult: ...


# --- what the provider-neutral code knows of a provider: its registration ----------------------


@dataclass(frozen=True, slots=True)
class Report:
    """What a provider said about a payment: a status, and what came with it."""

    status: PaymentState | None
    transaction_id: str | None = None
    approval_url: str | None = None
    instructions: str | None = None
    failure_code: str | None = None
    refunded: Decimal | None = None  # the total refunded so far, when the provider says it

    @classmethod
    def of(cls, result: ChargeResult) -> Report:
        return cls(
            PaymentState(result.status.value),
            result.transaction_id,
            approval_url=result.approval_url,
            instructions=result.instructions,
            failure_code=result.failure_code,
        )


@dataclass(frozen=True, slots=True)
class EventReading:
    """What a verified webhook event says about one of our payments: the provider's transaction
    id, and either a `report` to apply or `approved` (the payer approved: capture the charge)."""

    transaction_id: str | None
    report: Report | None = None
    approved: bool = False


class WebhookVerifier(Protocol):
    """Checks a delivery's signature against the raw body and reads the event it carries."""

    def verify(self, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent: ...


class SavedMethod(StrEnum):
    """Whether a charge needs a payment method the tenant attached at the provider beforehand."""

    REQUIRED = "required"  # charged without the payer present: nothing to charge without one
    OPTIONAL = "optional"  # without one, the payer is sent to approve
    NONE = "none"  # the payer pays by themselves (a bank transfer): nothing to attach


@dataclass(frozen=True, slots=True)
class PaymentProvider:
    """One provider as the rest of payments sees it, declared in its adapter and listed once in
    `payments.providers.REGISTRY`: its name (the API's `payment_method`), how to build its gateway
    and webhook verifier from Settings, and how it reads its own webhook events."""

    name: str
    display_name: str
    saved_method: SavedMethod
    gateway: Callable[[Settings], PaymentGateway]
    webhooks: Callable[[Settings], WebhookVerifier] | None = None
    read_event: Callable[[WebhookEvent], EventReading] | None = None
    charge_moves_money: bool = True  # False: the charge hands out instructions, a statement settles it
