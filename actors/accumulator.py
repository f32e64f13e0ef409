"""Tenant x hour usage deltas, summed exactly in Decimal. Pure: no Ray, Redis or SQL."""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from pricing.meters import METERS

ZERO = Decimal(0)
# Ingest caps quantities at 18 integer and 12 fractional digits, so 60 digits hold any realistic
# sum exactly; Inexact is trapped so that a sum that would round raises instead of drifting.
EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])

Cell = tuple[str, int]  # (tenant_id, hour as epoch seconds)
assert len(METERS) == 5, "a usage-log line has five quantities (add_encoded, encode_event)"


class HourlyAccumulator:
    """Sums of each meter per (tenant, hour); one instance is one not-yet-persisted delta."""

    __slots__ = ("cells", "events")

    def __init__(self) -> None:
        self.cells: dict[Cell, list[Decimal]] = {}
        self.events = 0

    def __len__(self) -> int:
        return len(self.cells)

    def add_encoded(self, payload: str) -> None:
        """Add a usage-log entry: lines of `tenant \\t hour \\t q1 \\t ... \\t q5`, empty = zero."""
        cells = self.cells
        lines = payload.split("\n")
        with decimal.localcontext(EXACT):
            # The five meters spelled out: a loop over them was a third of a shard's summing.
            for line in lines:
                tenant, hour, q0, q1, q2, q3, q4 = line.split("\t")
                key = (tenant, int(hour))
                cell = cells.get(key)
                if cell is None:
                    cell = cells[key] = [ZERO] * len(METERS)
                if q0:
                    cell[0] += Decimal(q0)
                if q1:
                    cell[1] += Decimal(q1)
                if q2:
                    cell[2] += Decimal(q2)
                if q3:
                    cell[3] += Decimal(q3)
                if q4:
                    cell[4] += Decimal(q4)
        self.events += len(lines)

    def add_rows(self, rows: Iterable[tuple[str, int, Sequence[Decimal]]]) -> None:
        """Add (tenant, hour, quantities) rows, e.g. read back from usage_hourly."""
        cells = self.cells
        with decimal.localcontext(EXACT):
            for tenant, hour, quantities in rows:
                cell = cells.get((tenant, hour))
                if cell is None:
                    cells[(tenant, hour)] = list(quantities)
                else:
                    for index, quantity in enumerate(quantities):
                        cell[index] += quantity

    def merge(self, other: HourlyAccumulator) -> None:
        self.add_rows((tenant, hour, values) for (tenant, hour), values in other.cells.items())
        self.events += other.events

    def rows(self) -> list[tuple[str, int, Sequence[Decimal]]]:
        """(tenant, hour, quantities), ordered by tenant then hour."""
        return [(tenant, hour, q) for (tenant, hour), q in sorted(self.cells.items())]

    def select(
        self, tenants: Iterable[str] | None, start: int | None = None, end: int | None = None
    ) -> Iterator[tuple[Cell, list[Decimal]]]:
        """Cells of the given tenants (all when None) with start <= hour < end."""
        wanted = None if tenants is None else set(tenants)
        for (tenant, hour), values in self.cells.items():
            if wanted is not None and tenant not in wanted:
                continue
            if (start is not None and hour < start) or (end is not None and hour >= end):
                continue
            yield (tenant, hour), values


def encode_event(tenant_id: str, hour: int, quantities: Iterable[Decimal | int]) -> str:
    """One usage-log line; zero quantities are left empty so the aggregator skips them."""
    fields = [tenant_id, str(hour)]
    # str() may give an exponent ("1E+3"); Decimal() reads it back exactly, and it is cheaper.
    fields.extend(str(q) if q else "" for q in quantities)
    return "\t".join(fields)
