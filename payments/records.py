"""What the payments use cases return: frozen records, read from the rows once, at the edge of
the store, so nothing above the use cases sees a database row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from payments.lifecycle import PaymentState


@dataclass(frozen=True, slots=True)
class Payment:
    """One payment of an invoice by one method, as it stands."""

    payment_id: uuid.UUID
    invoice_id: uuid.UUID
    tenant_id: str
    method: str
    status: PaymentState
    amount: Decimal  # what this payment asks for, major units
    received: Decimal
    refunded: Decimal
    currency: str
    attempts: int
    transaction_id: str | None
    approval_url: str | None
    instructions: str | None
    failure_code: str | None
    next_retry_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Payment:
        return cls(
            payment_id=row.payment_id,
            invoice_id=row.invoice_id,
            tenant_id=row.tenant_id,
            method=row.method,
            status=PaymentState(row.status),
            amount=Decimal(row.amount),
            received=Decimal(row.received),
            refunded=Decimal(row.refunded),
            currency=row.currency,
            attempts=int(row.attempts),
            transaction_id=row.transaction_id,
            approval_url=row.approval_url,
            instructions=row.instructions,
            failure_code=row.failure_code,
            next_retry_at=row.next_retry_at,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One charge of a payment: its outcome and, after a failure, what the tenant was told."""

    attempt: int
    at: datetime
    outcome: str
    failure_code: str | None
    reminder: str | None

    @classmethod
    def of(cls, row: Any) -> Attempt:
        return cls(row.attempt, row.at, row.outcome, row.failure_code, row.reminder)


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: uuid.UUID
    payment_id: uuid.UUID
    amount: Decimal
    status: str  # pending, completed, failed
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Refund:
        return cls(row.refund_id, row.payment_id, Decimal(row.amount), row.status, row.reason, row.created_at)


@dataclass(frozen=True, slots=True)
class PaymentDetails:
    """A payment with its attempts and refunds: what the API shows of it."""

    payment: Payment
    attempts: tuple[Attempt, ...]
    refunds: tuple[Refund, ...]


@dataclass(frozen=True, slots=True)
class PaymentTaken:
    """The payment an Idempotency-Key stands for; `created` when this request made it."""

    details: PaymentDetails
    created: bool


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What a webhook event did, in words (`now completed`, `duplicate: already processed`)."""

    provider: str
    event_id: str
    outcome: str

    @property
    def duplicate(self) -> bool:
        return self.outcome.startswith("duplicate")


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """What one bank statement entry did. An entry applied by an earlier import is `seen_before`
    and nothing else is said of it."""

    entry_id: str
    match: str  # payments.matching.MatchKind
    seen_before: bool = False
    invoice_id: uuid.UUID | str | None = None
    applied: Decimal = Decimal(0)
    overpaid: Decimal = Decimal(0)
    remaining_due: Decimal | None = None
