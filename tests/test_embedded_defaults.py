"""With DATABASE_URL and REDIS_URL unset, the embedded PostgreSQL and Redis carry the pipeline."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import ray
from redis.asyncio import Redis

from actors.accumulator import encode_event
from actors.stream_id import ORIGIN
from actors.usage_log import EncodedEvent
from actors.usage_shard import ShardConfig, UsageShard
from infra.embedded import resolve, stop_embedded
from infra.settings import Settings
from tests.metering_support import gated_log, stored


def test_embedded_servers_store_usage_through_a_shard(stack, embedded_dir):
    embedded = resolve(Settings(data_dir=embedded_dir, shards=1, redis_prefix="embedded", flush_interval_s=0.1))
    assert embedded.database_url.startswith("postgresql://") and "host=" in embedded.database_url
    assert embedded.redis_url.startswith("unix://")
    # A second command finds the same servers (and the same dev key) again.
    assert resolve(Settings(data_dir=embedded_dir)).redis_url == embedded.redis_url
    subprocess.run(
        [sys.executable, "-m", "cli.main", "migrate"],
        check=True,
        env={"BILLING_DATA_DIR": str(embedded_dir), "PATH": "/usr/bin:/bin"},
    )

    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600

    async def append() -> int:
        redis = Redis.from_url(embedded.redis_url)
        log = await gated_log(redis, embedded)
        events = [
            EncodedEvent("emb", f"e{i}", encode_event("emb", hour, (Decimal("0.1"), 0, 0, 0, 1)), hour)
            for i in range(10)
        ]
        result = await log.append(events + events[:3])
        await redis.aclose()
        return result.accepted

    assert asyncio.run(append()) == 10
    shard = UsageShard.options(name="embedded-shard").remote(0, ShardConfig.of(embedded))
    try:
        deadline = time.monotonic() + 30
        while ray.get(shard.flush.remote()) == ORIGIN:
            assert time.monotonic() < deadline, "the shard never stored the usage"
            time.sleep(0.1)
        assert stored(embedded, ["emb"]) == {("emb", hour): [Decimal("1.0"), 0, 0, 0, 10]}
    finally:
        ray.kill(shard, no_restart=True)
        stop_embedded(embedded_dir)
