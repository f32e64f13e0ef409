"""Helpers for metering tests: synthetic events with their exact ground truth, and settling."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ray
import redis
from sqlalchemy import select

from actors.layout import Layout, LayoutView, open_gates
from actors.usage_log import UsageLog
from infra.database import create_engine
from infra.schema import usage_hourly
from pricing.meters import METERS

Truth = dict[tuple[str, int], list[Decimal]]


def make_events(count: int, tenants: list[str], seed: int, hours: int = 6) -> tuple[list[dict], Truth]:
    """`count` events spread over the last `hours` hours, and their exact per-(tenant, hour) sums."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events, truth = [], {}
    for _ in range(count):
        tenant = rng.choice(tenants)
        at = now - timedelta(seconds=rng.randint(0, hours * 3600 - 1))
        quantities = [Decimal(rng.randint(0, 10**6)) / 1000 for _ in METERS[:-1]] + [rng.randint(0, 50)]
        events.append(
            {
                "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "tenant_id": tenant,
                "timestamp": at.isoformat(),
                "usage": {m.value: q if isinstance(q, int) else str(q) for m, q in zip(METERS, quantities)},
            }
        )
        cell = truth.setdefault((tenant, int(at.timestamp()) // 3600 * 3600), [Decimal(0)] * len(METERS))
        for index, quantity in enumerate(quantities):
            cell[index] += quantity
    return events, truth


def wait_settled(stack, timeout_s: float = 90) -> None:
    """Until every shard has stored every entry its stream has ever received."""
    wait_shards_settled(stack.settings, stack.shards, timeout_s)


def wait_shards_settled(settings, shards: list, timeout_s: float = 90) -> None:
    """wait_settled for a deployment of a test's own. A flush that fails (a dependency just came
    back) is tried again until the deadline."""
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            ray.get([shard.flush.remote() for shard in shards])
            statuses = ray.get([shard.status.remote() for shard in shards])
        except ray.exceptions.RayError as error:
            lagging = [repr(error)]
        else:
            lagging = [
                s
                for s in statuses
                if s["applied"] != client.xinfo_stream(s["stream"])["last-generated-id"].decode()
            ]
        if not lagging:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"shards did not settle: {lagging}")
        time.sleep(0.2)


def stored(settings, tenants: list[str]) -> Truth:
    """usage_hourly as stored in PostgreSQL for these tenants."""

    async def read() -> Truth:
        engine = create_engine(settings.database_url)
        async with engine.connect() as conn:
            result = await conn.execute(
                select(
                    usage_hourly.c.tenant_id,
                    usage_hourly.c.hour_start,
                    *(usage_hourly.c[m.value] for m in METERS),
                ).where(usage_hourly.c.tenant_id.in_(tenants))
            )
            rows = {(r[0], int(r[1].timestamp())): list(r[2:]) for r in result}
        await engine.dispose()
        return rows

    return asyncio.run(read())


def post_batches(api, token: str, events: list[dict], size: int = 1000) -> tuple[int, int]:
    accepted = duplicates = 0
    for start in range(0, len(events), size):
        response = api.post(
            "/api/v1/usage",
            json={"events": events[start : start + size]},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202, response.text
        accepted += response.json()["accepted"]
        duplicates += response.json()["duplicates"]
    return accepted, duplicates


async def gated_log(redis, settings, shards: int = 1) -> UsageLog:
    """A writer for tests that run their own shard actors: its layout is fixed and its gates open."""
    layout = Layout(shards, 1)
    await open_gates(redis, settings.redis_prefix, layout)
    return UsageLog(redis, settings.redis_prefix, LayoutView.fixed(layout), settings.dedup_window_s)
