"""PostgreSQL or a Redis replica goes away under a shard: nothing read is lost or stored before
it may be, and the shard catches up when the server returns."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import ray
import redis
from redis.exceptions import RedisError

from actors.accumulator import encode_event
from actors.stream_id import ORIGIN
from actors.usage_log import EncodedEvent
from actors.usage_shard import ShardConfig, UsageShard
from infra.database import migrate
from infra.embedded import resolve, stop_embedded, stop_postgres
from infra.redis_client import ReplicaAckTimeout, connect
from infra.settings import Settings
from tests.metering_support import gated_log, stored
from tests.redis_ha import SENTINEL_MASTER, RedisHA


def append(settings: Settings, first: int, count: int, hour: int, tenant: str = "t") -> int:
    async def run() -> int:
        redis = connect(settings.redis_connection())  # waits for replicas as ingest does, if asked to
        try:
            log = await gated_log(redis, settings)
            events = [
                EncodedEvent(tenant, f"e{n}", encode_event(tenant, hour, (Decimal("0.25"), 0, 0, 0, 1)), hour)
                for n in range(first, first + count)
            ]
            return (await log.append(events)).accepted
        finally:
            await redis.aclose()

    return asyncio.run(run())


def until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_flushes_wait_for_postgres_and_lose_nothing(stack, embedded_dir):
    settings = resolve(Settings(data_dir=embedded_dir, shards=1, redis_prefix="outage", flush_interval_s=0.1))
    migrate(settings.database_url)
    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600
    shard = UsageShard.options(name="outage-shard").remote(0, ShardConfig.of(settings))
    try:
        assert append(settings, 0, 100, hour) == 100
        until(lambda: ray.get(shard.flush.remote()) != ORIGIN)

        stop_postgres(embedded_dir)
        assert append(settings, 100, 50, hour) == 50  # Redis still takes usage
        until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 50)
        with pytest.raises(ray.exceptions.RayTaskError):
            ray.get(shard.flush.remote())
        assert ray.get(shard.status.remote())["unflushed_events"] == 50  # kept, not dropped

        # A fresh process starts the embedded server again (this one's pgserver handle is stale).
        restart = f"from pathlib import Path; from infra.embedded import start_postgres; start_postgres(Path({str(embedded_dir)!r}))"
        subprocess.run([sys.executable, "-c", restart], check=True)
        until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 0)
        assert stored(settings, ["t"]) == {("t", hour): [Decimal("37.50"), 0, 0, 0, 150]}
    finally:
        ray.kill(shard, no_restart=True)
        stop_embedded(embedded_dir)


def test_a_redis_that_lost_its_data_behind_our_clock_loses_no_new_usage(stack, embedded_dir):
    import redis

    from actors.usage_log import stream_key

    settings = resolve(Settings(data_dir=embedded_dir, shards=1, redis_prefix="reborn", flush_interval_s=0.1))
    migrate(settings.database_url)
    hour = int(datetime.now(UTC).timestamp()) // 3600 * 3600
    client = redis.Redis.from_url(settings.redis_url)
    # The old Redis ran ten minutes ahead: its last entry's id is ahead of the new one's clock.
    ahead_ms = int(time.time() * 1000) + 600_000
    line = encode_event("t", hour, (Decimal(1), 0, 0, 0, 1))
    client.xadd(stream_key("reborn", 0), {"e": line}, id=f"{ahead_ms}-0")
    shard = UsageShard.options(name="reborn-shard").remote(0, ShardConfig.of(settings))
    try:
        until(lambda: ray.get(shard.flush.remote()) != ORIGIN)
        client.flushall()  # Redis comes back empty
        assert append(settings, 0, 20, hour) == 20  # ids from the new Redis clock: behind the offset
        until(lambda: stored(settings, ["t"]).get(("t", hour), [0] * 5)[4] == 21, timeout_s=30)
        time.sleep(0.5)  # and nothing more arrives
        assert stored(settings, ["t"]) == {("t", hour): [Decimal("6.00"), 0, 0, 0, 21]}
    finally:
        ray.kill(shard, no_restart=True)
        stop_embedded(embedded_dir)


def test_a_shard_stores_only_what_the_redis_replica_holds(stack, tmp_path):
    """With BILLING_REDIS_MIN_REPLICAS_ACKED=1 a shard stores an entry only once a replica holds
    it: stored from the primary alone, it would be counted again after a failover to a replica
    that never had it, when the kernel resends the batch that was answered 503."""
    ha = RedisHA.start(tmp_path / "redis", replicas=1, sentinels=0)
    settings = stack.settings.with_(
        redis_url=f"redis://127.0.0.1:{ha.primary}/0",
        redis_prefix=f"replica-{uuid.uuid4().hex[:6]}",
        redis_min_replicas_acked=1,
        redis_wait_timeout_ms=500,
        shards=1,
        flush_interval_s=0.1,
    )
    tenant, hour = f"replica-{uuid.uuid4().hex[:6]}", 1_780_000_000 // 3600 * 3600
    shard = UsageShard.options(name=settings.redis_prefix).remote(0, ShardConfig.of(settings))
    try:
        _sent_again(settings, 0, 10, hour, tenant)  # a first WAIT on a busy machine may time out
        until(lambda: stored(settings, [tenant]) == {(tenant, hour): [Decimal("2.50"), 0, 0, 0, 10]})

        ha.pause(ha.replicas[0])
        with pytest.raises(ReplicaAckTimeout):  # ingest answers 503: the primary alone holds them
            append(settings, 10, 20, hour, tenant)
        time.sleep(2)  # flushes, each waiting 500 ms for the replica
        assert stored(settings, [tenant]) == {(tenant, hour): [Decimal("2.50"), 0, 0, 0, 10]}
        assert ray.get(shard.status.remote())["unflushed_events"] == 20  # read, kept for later

        ha.resume(ha.replicas[0])
        assert _all_stored(settings, shard, tenant) == {(tenant, hour): [Decimal("7.50"), 0, 0, 0, 30]}
    finally:
        ray.kill(shard, no_restart=True)
        ha.stop()


def test_a_batch_a_failover_lost_counts_once_when_the_kernel_sends_it_again(stack, tmp_path):
    """A batch reaches the primary alone (both replicas paused: answered 503) and a shard reads
    it; the primary dies and Sentinel promotes a replica that never had it; the kernel sends the
    batch again. It counts once: stored from the old primary as well (the new primary's replica
    vouching for what it never held), it counted twice, as a fresh-clone CI run of
    tests/test_multinode.py found (3,000 events during a failover)."""
    ha = RedisHA.start(tmp_path / "redis", replicas=2, sentinels=3)
    settings = stack.settings.with_(
        redis_sentinels=tuple(("127.0.0.1", port) for port in ha.sentinels),
        redis_sentinel_master=SENTINEL_MASTER,
        redis_prefix=f"failover-{uuid.uuid4().hex[:6]}",
        redis_min_replicas_acked=1,
        redis_wait_timeout_ms=500,
        shards=1,
        flush_interval_s=0.1,
    )
    # An hour whose ids are still remembered (the dedup sets expire with the late window).
    tenant, hour = f"failover-{uuid.uuid4().hex[:6]}", int(time.time()) // 3600 * 3600
    shard = UsageShard.options(name=settings.redis_prefix).remote(0, ShardConfig.of(settings))
    try:
        _sent_again(settings, 0, 10, hour, tenant)  # a first WAIT on a busy machine may time out
        until(lambda: stored(settings, [tenant]) == {(tenant, hour): [Decimal("2.50"), 0, 0, 0, 10]})

        for replica in ha.replicas:  # cut off: a paused process still takes in what TCP brings
            ha.pause(replica)
        with redis.Redis(port=ha.primary) as primary:
            primary.client_kill_filter(_type="replica")
        with pytest.raises(ReplicaAckTimeout):  # answered 503: on the primary alone
            append(settings, 10, 10, hour, tenant)
        until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 10)  # read, not stored
        ha.kill(ha.primary)
        for replica in ha.replicas:
            ha.resume(replica)
        until(lambda: ha.master_port() != ha.primary)

        assert _sent_again(settings, 10, 10, hour, tenant) == 10  # the new primary never had them
        assert _all_stored(settings, shard, tenant) == {(tenant, hour): [Decimal("5.00"), 0, 0, 0, 20]}
    finally:
        ray.kill(shard, no_restart=True)
        ha.stop()


def _all_stored(settings: Settings, shard: Any, tenant: str) -> dict:
    """The tenant's usage in PostgreSQL once the shard holds nothing unstored, and nothing more
    arrives."""
    until(lambda: ray.get(shard.status.remote())["unflushed_events"] == 0)
    time.sleep(0.5)
    return stored(settings, [tenant])


def _sent_again(settings: Settings, first: int, count: int, hour: int, tenant: str) -> int:
    """The kernel sending a batch until it is accepted (a WAIT timed out, or a failover settles);
    how many of its events were new on the last try."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return append(settings, first, count, hour, tenant)
        except (ReplicaAckTimeout, RedisError, OSError):
            assert time.monotonic() < deadline, "the resend was never accepted"
            time.sleep(0.5)


def test_a_restart_with_another_shard_count_keeps_the_recorded_layout(stack, caplog):
    from serve.stack import start_shards

    handles = start_shards(stack.settings.with_(shards=stack.settings.shards + 1))
    assert len(handles) == len(stack.shards)  # moving tenants takes `billing shards set`, not a restart
    assert f"using {len(stack.shards)}" in caplog.text
