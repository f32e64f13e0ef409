"""A large usage load, built fast, with its exact ground truth per (tenant, hour).

A million events cannot go through make_events (a dict and five Decimals each) in test time, so
the bodies are written as bytes from a few hundred precomputed quantities, and the truth is summed
in integer thousandths with numpy (exact: every partial sum stays far below 2**63). Each event
counts one execution, so a cell's stored executions are its number of stored events: that is how
a lost or doubled event is counted, while the four decimal meters, varied per event, make the
totals prove exactness.

The batches are cut into phases, each stamped with its own hours, so whatever goes wrong in one
phase (a fault injected while it is sent) shows in that phase's cells and no other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from pricing.meters import METERS
from tests.metering_support import Truth

DISTINCT_QUANTITIES = 389  # a prime, so the four meters' draws do not line up
DECIMAL_METERS = METERS[:-1]
TENANT_PREFIX = "ft-"


@dataclass(frozen=True)
class Load:
    bodies: list[bytes]  # each a {"events": [...]} batch
    batch_size: int
    truth: Truth  # (tenant, hour start) -> the five meters, exact
    phase_hours: list[list[int]]  # the hour starts each phase's events are stamped in

    @property
    def events(self) -> int:
        return len(self.bodies) * self.batch_size

    def phase_of_batch(self, index: int) -> int:
        return index * len(self.phase_hours) // len(self.bodies)

    def phase_cells(self, phase: int) -> set[tuple[str, int]]:
        hours = set(self.phase_hours[phase])
        return {cell for cell in self.truth if cell[1] in hours}


def build_load(
    events: int, tenants: int, phases: int, hours_per_phase: int, batch_size: int = 1000, seed: int = 5
) -> Load:
    """`events` events over `tenants` tenants, in whole past hours (the oldest 1 + phases x
    hours_per_phase hours ago, inside the default 24 h late window)."""
    assert events % batch_size == 0
    rng = np.random.default_rng(seed)
    latest = int(datetime.now(UTC).timestamp()) // 3600 * 3600 - 3600  # the last whole hour
    hours = [latest - 3600 * (phases * hours_per_phase - 1 - n) for n in range(phases * hours_per_phase)]
    # Thousandths: 0.000 .. 999.999
    thousandths = rng.integers(0, 1_000_000, DISTINCT_QUANTITIES)
    texts = [f"{k // 1000}.{k % 1000:03d}" for k in thousandths.tolist()]

    batch_phase = np.arange(events) // batch_size * phases // (events // batch_size)
    hour_index = batch_phase * hours_per_phase + rng.integers(0, hours_per_phase, events)
    tenant = rng.integers(0, tenants, events)
    second = rng.integers(0, 3600, events)
    picks = rng.integers(0, DISTINCT_QUANTITIES, (events, len(DECIMAL_METERS)))

    truth = _truth(tenant, hour_index, thousandths[picks], tenants, hours)
    bodies = _bodies(tenant, hour_index, second, picks, texts, hours, batch_size)
    phase_hours = [hours[p * hours_per_phase : (p + 1) * hours_per_phase] for p in range(phases)]
    return Load(bodies, batch_size, truth, phase_hours)


def tenant_name(index: int) -> str:
    return f"{TENANT_PREFIX}{index}"


def _truth(tenant, hour_index, quantities, tenants: int, hours: list[int]) -> Truth:
    cell = tenant * len(hours) + hour_index
    cells = tenants * len(hours)
    sums = np.zeros((cells, quantities.shape[1]), dtype=np.int64)
    np.add.at(sums, cell, quantities)
    counts = np.bincount(cell, minlength=cells)
    truth: Truth = {}
    for index, (row, count) in enumerate(zip(sums.tolist(), counts.tolist())):
        if count:
            key = (tenant_name(index // len(hours)), hours[index % len(hours)])
            truth[key] = [Decimal(total).scaleb(-3) for total in row] + [Decimal(count)]
    return truth


def _bodies(tenant, hour_index, second, picks, texts, hours, batch_size: int) -> list[bytes]:
    stamps = [[datetime.fromtimestamp(h + s, UTC).isoformat() for s in range(3600)] for h in hours]
    # '"cpu_seconds":"12.345"' for every quantity of every meter: one lookup per meter per event.
    cpu, memory, storage, network = ([f'"{m.value}":"{text}"' for text in texts] for m in DECIMAL_METERS)
    columns = (tenant, hour_index, second, *picks.T)
    events = [
        f'{{"event_id":"e{n}","tenant_id":"{TENANT_PREFIX}{t}","timestamp":"{stamps[h][s]}","usage":{{'
        f'{cpu[a]},{memory[b]},{storage[c]},{network[d]},"executions":1}}}}'
        for n, (t, h, s, a, b, c, d) in enumerate(zip(*(column.tolist() for column in columns)))
    ]
    return [
        f'{{"events":[{",".join(events[start : start + batch_size])}]}}'.encode()
        for start in range(0, len(events), batch_size)
    ]
