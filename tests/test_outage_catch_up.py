"""PostgreSQL goes away under a shard: nothing read is lost, and it catches up when it returns."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import ray
from redis.asyncio import Redis

from actors.accumulator import encode_event
from actors.stream_id import ORIGIN
from actors.usage_log import EncodedEvent, UsageLog
from actors.usage_shard import UsageShard
from infra.database import migrate
from infra.embedded import resolve, stop_embedded, stop_postgres
from infra.settings import Settings
from tests.metering_support import stored


def append(settings: Settings, first: int, count: int, hour: int) -> int:
    async def run() -> int:
        redis = Redis.from_url(settings.redis_url)
        log = UsageLog(redis, settings.redis_prefix, 1, settings.dedup_window_s)
        events = [
            EncodedEvent("t", f"e{n}", encode_event("t", hour, (Decimal("0.25"), 0, 0, 0, 1)))
            for n in range(first, first + count)
        ]
        result = await log.append(events)
        await redis.aclose()
        return result.accepted

    return asyncio.run(run())


def until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_flushes_wait_for_postgres_and_lose_nothing(stack, tmp_path):
    settings = resolve(Settings(data_dir=tmp_path, shards=1, redis_prefix="outage", flush_interval_s=0.1))
    migrate(settings.database_url)
    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600
    shard = UsageShard.options(name="outage-shard").remote(0, settings)
    try:
        assert append(settings, 0, 100, hour) == 100
        until(lambda: ray.get(shard.flush.remote()) != ORIGIN)

        stop_postgres(tmp_path)
        assert append(settings, 100, 50, hour) == 50  # Redis still takes usage
        until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 50)
        with pytest.raises(ray.exceptions.RayTaskError):
            ray.get(shard.flush.remote())
        assert ray.get(shard.status.remote())["unflushed_events"] == 50  # kept, not dropped

        # A fresh process starts the embedded server again (this one's pgserver handle is stale).
        restart = f"from pathlib import Path; from infra.embedded import start_postgres; start_postgres(Path({str(tmp_path)!r}))"
        subprocess.run([sys.executable, "-c", restart], check=True)
        until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 0)
        assert stored(settings, ["t"]) == {("t", hour): [Decimal("37.50"), 0, 0, 0, 150]}
    finally:
        ray.kill(shard, no_restart=True)
        stop_embedded(tmp_path)
