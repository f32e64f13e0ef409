"""How fast this machine is right now, printed by the benchmarks beside their figures.

Machines of this kind share their cores with others, and their speed moves by more than most
changes a benchmark is run to show: on 2026-12-07 the same code gave 138,362 and 88,216 events/s
end to end within an hour, and a pure-Python workload like the one below took 1.7 times as long
an hour later (112 ms, then 193, with nothing else running here). The reference tells a slow
spell from a fast one, not all of the difference: two ingest runs minutes apart, both with
references of 155-159 ms, gave 11.8 and 15.3 µs of service CPU per event.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal


def _workload() -> None:
    """Pure Python of the kind the service runs: JSON round trips and Decimal arithmetic."""
    document = {"lines": [{"quantity": "276.903", "unit": "CPU-hour", "amount": 24.55}] * 50}
    for _ in range(3000):
        json.loads(json.dumps(document))
    total = Decimal(0)
    for n in range(100_000):
        total += Decimal(n) / 7


def reference_ms(repeat: int = 3) -> float:
    """The workload's CPU time in ms, the best of `repeat` runs (lower is faster)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        _workload()
        best = min(best, time.process_time() - started)
    return 1000 * best


def describe(when: str) -> str:
    return f"machine speed {when}: reference workload {reference_ms():.0f} ms of CPU (bench/machine.py; lower is faster)"
