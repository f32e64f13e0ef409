"""When to try a failed delivery again: exponential backoff with jitter, until its window ends.

Delay n (after the n-th failed attempt) is base * 2^(n-1), capped, then drawn uniformly from its
upper half ("equal jitter"): retries of many deliveries that failed together spread out, and no
delay is shorter than half its step. With the defaults (5 s base, 1 h cap, 28 h window) that is
about 5 s, 10 s, 20 s, ... 1 h, then 30 to 60 min: some 45 attempts over the window.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def retry_delay(failed_attempts: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    step: float = min(cap_s, base_s * 2.0 ** min(max(failed_attempts - 1, 0), 60))
    draw = (rng or random).random()
    return step / 2 + draw * step / 2


def next_attempt(
    now: datetime, failed_attempts: int, give_up_at: datetime, base_s: float, cap_s: float
) -> datetime | None:
    """The time of the next attempt, or None when the delivery's window has ended: it failed."""
    if now >= give_up_at:
        return None
    return min(now + timedelta(seconds=retry_delay(failed_attempts, base_s, cap_s)), give_up_at)
