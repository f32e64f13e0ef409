"""The one place the service's asyncio Redis clients are made: a plain URL (REDIS_URL), or the
primary that Redis Sentinel names (REDIS_SENTINELS + REDIS_SENTINEL_MASTER), so a failover is
followed without a restart.

With BILLING_REDIS_MIN_REPLICAS_ACKED=N (N >= 1), a pipeline that runs a script, which is how the
usage log appends events with their dedup keys (actors/usage_log.py), ends with WAIT N: its
replies come back only once N replicas hold what it wrote, and it raises ReplicaAckTimeout (a
RedisError, so ingest answers 503 with Retry-After and the kernel sends the batch again) when
they do not within BILLING_REDIS_WAIT_TIMEOUT_MS. A 202 then means the events are on the primary
and on N replicas, so a failover to one of them loses none.

Just before WAIT the pipeline publishes an empty message: WAIT counts replicas that reached this
connection's last write, and a retried batch whose events were all duplicates writes nothing, so
without it WAIT could vouch for an older write instead of the first attempt's entry (which
another connection wrote and may not have replicated yet). PUBLISH is replicated, and moves this
connection's offset to the primary's current one, which includes that entry.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from infra.settings import RedisConnection

WAIT_CHANNEL = "billing:replicated"  # nobody listens; a replicated no-op write
SCRIPT_COMMANDS = {"EVALSHA", "EVAL", "EVALSHA_RO", "FCALL"}


class ReplicaAckTimeout(RedisError):
    """Fewer replicas than configured confirmed a write in time: it may be on the primary alone."""


def connect(redis: RedisConnection, **options: Any) -> ReplicatedRedis:
    """An asyncio client of the service's Redis (its primary, under Sentinel); `options` are
    connection options (timeouts, retry, health checks)."""
    if redis.sentinels:
        sentinel = Sentinel(
            list(redis.sentinels),
            sentinel_kwargs={"socket_timeout": 1, "socket_connect_timeout": 1},
            **options,
        )
        client: ReplicatedRedis = sentinel.master_for(
            redis.sentinel_master, redis_class=ReplicatedRedis, db=_db(redis.url), **options
        )
    else:
        if redis.url is None:
            raise ValueError("no Redis configured (REDIS_URL or REDIS_SENTINELS)")
        # from_url builds a `cls`, but redis annotates it as returning a plain Redis
        client = cast(ReplicatedRedis, ReplicatedRedis.from_url(redis.url, **options))
    client.replicas_acked, client.wait_timeout_ms = redis.min_replicas_acked, redis.wait_timeout_ms
    return client


def _db(url: str | None) -> int:
    """The database number REDIS_URL names (Sentinel names only the host)."""
    return int(parse_url(url).get("db", 0)) if url else 0


class ReplicatedRedis(Redis):
    """A Redis client whose script pipelines wait for `replicas_acked` replicas (0: they do not)."""

    replicas_acked: int = 0
    wait_timeout_ms: int = 1000

    async def replicated(self) -> bool:
        """Whether `replicas_acked` replicas hold all the primary held when this was called (True
        when none is asked for). The usage shards ask before they store what they read: an entry
        read from the primary before it reached a replica, stored, then lost with the primary
        would be counted twice once the kernel resends it (its append was answered 503)."""
        if self.replicas_acked <= 0:
            return True
        async with super().pipeline(transaction=False) as pipe:
            _wait_for_replicas(pipe, self.replicas_acked, self.wait_timeout_ms)
            _, acked = await pipe.execute()
        return int(acked) >= self.replicas_acked

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = ReplicatedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.replicas_acked, pipe.wait_timeout_ms = self.replicas_acked, self.wait_timeout_ms
        return pipe


class ReplicatedPipeline(Pipeline):
    replicas_acked: int = 0
    wait_timeout_ms: int = 1000

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        waits = self.replicas_acked > 0 and any(
            str(args[0]).upper() in SCRIPT_COMMANDS for args, _ in self.command_stack
        )
        if not waits:
            return await super().execute(raise_on_error)
        _wait_for_replicas(self, self.replicas_acked, self.wait_timeout_ms)
        replies = await super().execute(raise_on_error)
        *replies, _, acked = replies
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self.replicas_acked:
            raise ReplicaAckTimeout(
                f"{acked} of {self.replicas_acked} replicas confirmed the write in {self.wait_timeout_ms} ms"
            )
        return replies


def _wait_for_replicas(pipe: Pipeline, replicas: int, timeout_ms: int) -> None:
    """PUBLISH then WAIT queued on `pipe`: their replies, last, are 0 and the replicas that
    confirmed. The PUBLISH makes WAIT vouch for all the primary holds (see the module's docstring)."""
    pipe.execute_command("PUBLISH", WAIT_CHANNEL, "")
    pipe.execute_command("WAIT", replicas, timeout_ms)
