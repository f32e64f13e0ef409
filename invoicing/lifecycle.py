"""The invoice's lifecycle: its statuses and the moves between them (a twin of
payments/lifecycle.py).

    draft -> finalized                       (numbered; lines frozen from then on)
    finalized -> paid | void | uncollectible
    uncollectible -> paid                    (a late payment)

A draft is recomposed whenever it is asked for; finalizing it is the one move that writes
lines. After that only the status moves, along the edges above: migration 0005's trigger refuses
any other change in the database as the second guard.
"""

from __future__ import annotations

from enum import StrEnum


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


_MOVES: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.FINALIZED}),
    InvoiceStatus.FINALIZED: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}

# Issued and not cancelled: may take a payment (while something is due) or a credit note.
PAYABLE = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.UNCOLLECTIBLE})
CREDITABLE = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE})
# Counted as revenue in the reports (an uncollectible invoice is a loss, a void one never was).
REVENUE = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.PAID})
# What late usage may still reach and what charges anything: every issued, uncancelled invoice.
CHARGED = frozenset({InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.UNCOLLECTIBLE})


def can_move(current: str, wanted: str) -> bool:
    """Whether an invoice in `current` may move to `wanted` (staying where it is is not a move)."""
    return InvoiceStatus(wanted) in _MOVES[InvoiceStatus(current)]


def sources(wanted: InvoiceStatus) -> frozenset[InvoiceStatus]:
    """The statuses an invoice may be in to move to `wanted`."""
    return frozenset(status for status, moves in _MOVES.items() if wanted in moves)
