"""Dunning: when a failed payment is tried again, what the tenant is told, and when to give up.

The schedule is a list of delays after each failure ("1d,3d,7d": retry a day after the first
failure, three days after the second, a week after the third). After the last retry fails the
invoice is uncollectible. Pure: the runner (payments/dunning_round.py) keeps the clock and the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True, slots=True)
class DunningSchedule:
    delays: tuple[timedelta, ...]

    @classmethod
    def parse(cls, text: str) -> DunningSchedule:
        """`"1d,3d,7d"`; units s, m, h, d. Raises ValueError naming the bad part."""
        delays = []
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            found = re.fullmatch(r"(\d+)([smhd])", part)
            if not found or int(found[1]) == 0:
                raise ValueError(f"dunning schedule: {part!r} is not a positive delay such as 3d or 12h")
            delays.append(timedelta(seconds=int(found[1]) * _UNITS[found[2]]))
        return cls(tuple(delays))

    def next_retry(self, failures: int, failed_at: datetime) -> datetime | None:
        """When to try again after the `failures`-th failure, or None: give up."""
        return failed_at + self.delays[failures - 1] if failures <= len(self.delays) else None


def reminder(invoice_number: str, amount: str, failure_code: str | None, retry_at: datetime | None) -> str:
    """What the tenant is told after a failed attempt."""
    why = f" ({failure_code})" if failure_code else ""
    if retry_at is None:
        return (
            f"Final notice: the payment of {amount} for invoice {invoice_number} failed{why} and will not "
            "be retried; the invoice is now uncollectible. Please pay by another method."
        )
    return (
        f"The payment of {amount} for invoice {invoice_number} failed{why}. We will try again on "
        f"{retry_at:%Y-%m-%d %H:%M} UTC; please update your payment method before then."
    )
