"""Changing the number of usage shards while the kernel keeps posting: nothing lost, nothing
counted twice, and an event sent again after the change is still a duplicate."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from actors.layout import freeze_gates, open_gates
from actors.sharding import shard_of
from actors.usage_store import recorded_layout
from tests.conftest import auth
from tests.metering_support import make_events, post_batches, stored, wait_settled

BATCH = 200


class Kernel(threading.Thread):
    """Posts fresh batches until stopped, like the kernel: a 503 is retried with the same event
    ids. Keeps what it sent and its exact ground truth."""

    def __init__(self, api, token: str, tenants: list[str]) -> None:
        super().__init__(daemon=True)
        self.api, self.token, self.tenants = api, token, tenants
        self.sent: list[dict] = []
        self.truth: dict = {}
        self.posted = 0
        self.statuses: Counter[int] = Counter()
        self.retry_afters: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            batch, truth = make_events(BATCH, self.tenants, seed=self.posted)
            while True:
                response = self.api.post("/api/v1/usage", json={"events": batch}, headers=auth(self.token))
                self.statuses[response.status_code] += 1
                if response.status_code != 503:
                    break
                self.retry_afters.append(response.headers.get("retry-after"))
                time.sleep(0.1)
            assert response.status_code == 202, response.text
            self.sent += batch
            for cell, quantities in truth.items():
                total = self.truth.setdefault(cell, [Decimal(0)] * len(quantities))
                self.truth[cell] = [a + b for a, b in zip(total, quantities)]
            self.posted += 1
            time.sleep(0.02)  # a steady stream, so each change lands in the middle of it


def live_total(api, tokens, tenant: str) -> Decimal:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {"from": (hour - timedelta(hours=7)).isoformat(), "to": (hour + timedelta(hours=1)).isoformat()}
    response = api.get(f"/api/v1/usage/{tenant}", params=window, headers=auth(tokens["finance"]))
    assert response.status_code == 200, response.text
    return sum((Decimal(row["cpu_seconds"]) for row in response.json()["rows"]), Decimal(0))


def cpu_total(truth, tenant: str) -> Decimal:
    return sum((cell[0] for (t, _), cell in truth.items() if t == tenant), Decimal(0))


def wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_changing_the_shard_count_during_ingest_loses_and_doubles_nothing(stack, api, tokens):
    tenants = [f"reshard-{n}" for n in range(60)]
    before = len(stack.shards)
    grown = before + 1
    assert any(shard_of(t, before) != shard_of(t, grown) for t in tenants)  # tenants do move

    kernel = Kernel(api, tokens["kernel"], tenants)
    kernel.start()
    marks = []
    for count in (grown, before):
        # However long a change takes, batches go before, during and after it.
        wait_for(lambda: kernel.posted >= (marks[-1][1] if marks else 0) + 40)
        start, began = kernel.posted, time.monotonic()
        layout = stack.reshard(count, report=print)
        marks.append((start, kernel.posted))
        print(f"resharded to {count} after batch {start} in {time.monotonic() - began:.2f} s")
        assert layout.shards == count and not layout.changing
    wait_for(lambda: kernel.posted >= marks[-1][1] + 40)
    kernel.stop.set()
    kernel.join(timeout=60)

    assert not kernel.is_alive()
    assert all(start < end for start, end in marks), marks  # posted during each change
    assert set(kernel.statuses) <= {202, 503}
    assert all(value == "1" for value in kernel.retry_afters)
    # Live, before any further flush: what the replicas read from the new shards plus PostgreSQL.
    moved = [t for t in tenants if shard_of(t, before) != shard_of(t, grown)][:5]
    assert {t: live_total(api, tokens, t) for t in moved} == {t: cpu_total(kernel.truth, t) for t in moved}
    wait_settled(stack)
    assert stored(stack.settings, tenants) == kernel.truth
    print(
        f"{len(kernel.sent)} events in {kernel.posted} batches, statuses {dict(kernel.statuses)}, "
        f"batches posted at the start and end of each change {marks}: totals exact"
    )
    # A sample of events sent again, after both changes: every one is known.
    sample = kernel.sent[::7]
    assert post_batches(api, tokens["kernel"], sample, size=BATCH) == (0, len(sample))


def test_writers_wait_for_frozen_shards_then_answer_503_with_retry_after(stack, api, tokens):
    prefix = stack.settings.redis_prefix
    layout = asyncio.run(recorded_layout(stack.settings.database_url, stack.settings.redis_prefix))
    events, truth = make_events(20, ["frozen-tenant"], seed=5)
    asyncio.run(_redis(stack.settings.redis_url, lambda r: freeze_gates(r, prefix, range(layout.shards))))
    try:
        started = time.monotonic()
        response = api.post("/api/v1/usage", json={"events": events}, headers=auth(tokens["kernel"]))
        waited = time.monotonic() - started
    finally:
        asyncio.run(_redis(stack.settings.redis_url, lambda r: open_gates(r, prefix, layout)))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("shard-layout-changing")
    assert waited >= 4  # it waited for the change before giving up
    assert post_batches(api, tokens["kernel"], events) == (20, 0)  # nothing was half-taken
    wait_settled(stack)
    assert stored(stack.settings, ["frozen-tenant"]) == truth


async def _redis(url: str, action) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await action(client)
    finally:
        await client.aclose()


def test_billing_shards_status_shows_the_layout_and_every_shard(stack, monkeypatch, capsys):
    from cli.main import main

    settings = stack.settings
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BILLING_REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("BILLING_DATA_DIR", str(settings.data_dir))
    assert main(["shards", "set", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["shards", "status"]) == 0
    out = capsys.readouterr().out
    assert f"layout: {len(stack.shards)} shards, generation " in out
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == [
        f"  shard {n}" for n in range(len(stack.shards))
    ]
