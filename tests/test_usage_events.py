"""serve.usage_events.parse on its own (no stack): each event's log line holds its own quantities
exactly, in meter order, whichever path (one match for the batch, or value by value) read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from serve.usage_events import parse

NOW = datetime(2026, 3, 31, 12, 30, tzinfo=UTC)
HOUR = int(datetime(2026, 3, 31, 12, tzinfo=UTC).timestamp())


def body(*usages: str) -> bytes:
    records = [
        f'{{"tenant_id": "t{n % 2}", "timestamp": "2026-03-31T12:{n:02d}:00Z", "usage": {usage}, "event_id": "e{n}"}}'
        for n, usage in enumerate(usages)
    ]
    return f'{{"events": [{", ".join(records)}]}}'.encode()


def lines(*usages: str) -> list[str]:
    return [event.line for event in parse(body(*usages), NOW, 86_400, 300, 1_000)]


def test_each_line_holds_its_own_events_quantities_in_meter_order():
    assert lines(
        '{"cpu_seconds": "1.5", "network_gb": 2}',
        '{"memory_gb_hours": 0.25, "executions": 3}',
        '{"storage_gb_hours": "7", "cpu_seconds": 123456789.123456789012}',
        '{"executions": 1}',
    ) == [
        f"t0\t{HOUR}\t1.5\t\t\t2\t",
        f"t1\t{HOUR}\t\t0.25\t\t\t3",
        f"t0\t{HOUR}\t123456789.123456789012\t\t7\t\t",
        f"t1\t{HOUR}\t\t\t\t\t1",
    ]


@pytest.mark.parametrize(("unusual", "exact"), [("1e3", "1E+3"), ("1E+3", "1E+3"), ("2.50e-1", "0.250")])
def test_a_batch_with_one_unusual_quantity_keeps_every_other_exact_and_in_place(unusual, exact):
    # A number with an exponent is read value by value, exactly (Decimal's text of it).
    got = lines('{"cpu_seconds": "0.1"}', f'{{"network_gb": {unusual}}}', '{"memory_gb_hours": "2"}')
    assert [line.split("\t")[2:] for line in got] == [
        ["0.1", "", "", "", ""],
        ["", "", "", exact, ""],
        ["", "2", "", "", ""],
    ]


def test_a_single_record_is_read_as_a_batch_of_one():
    record = json.loads(body('{"cpu_seconds": "3"}'))["events"][0]
    events = parse(json.dumps(record).encode(), NOW, 86_400, 300, 1_000)
    assert [(e.tenant_id, e.event_id, e.line, e.hour) for e in events] == [
        ("t0", "e0", f"t0\t{HOUR}\t3\t\t\t\t", HOUR)
    ]
