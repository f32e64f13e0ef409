"""The payment state machine: what a provider's report may change, and what it may not.

    pending -> completed | failed | abandoned
    abandoned -> completed (an approval that arrives after all: money taken is recorded)
    failed -> pending (a dunning retry) | completed (a late success)
    completed -> partially_refunded | refunded
    partially_refunded -> partially_refunded | refunded

Webhooks arrive late, twice and out of order. A report that would move a payment backwards (a
`payment_failed` delivered after `succeeded`, a `pending` after anything) is ignored, so the
order in which events arrive cannot undo what has happened.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum


class PaymentState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    # The payer left the provider's approval page without approving: nothing was taken, and the
    # invoice may be paid again (no dunning, unlike failed).
    ABANDONED = "abandoned"


_FORWARD: dict[PaymentState, frozenset[PaymentState]] = {
    PaymentState.PENDING: frozenset({PaymentState.COMPLETED, PaymentState.FAILED, PaymentState.ABANDONED}),
    PaymentState.ABANDONED: frozenset({PaymentState.COMPLETED}),
    PaymentState.FAILED: frozenset({PaymentState.PENDING, PaymentState.COMPLETED}),
    PaymentState.COMPLETED: frozenset({PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED}),
    PaymentState.PARTIALLY_REFUNDED: frozenset({PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED}),
    PaymentState.REFUNDED: frozenset(),
}

COLLECTED = frozenset({PaymentState.COMPLETED, PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED})


def advance(current: PaymentState, reported: PaymentState) -> PaymentState | None:
    """The state after a report of `reported`, or None when the report is to be ignored."""
    return reported if reported in _FORWARD[current] else None


def after_refunds(received: Decimal, refunded: Decimal) -> PaymentState:
    """The state of a collected payment once `refunded` of its `received` has gone back."""
    if refunded <= 0:
        return PaymentState.COMPLETED
    return PaymentState.REFUNDED if refunded >= received else PaymentState.PARTIALLY_REFUNDED
