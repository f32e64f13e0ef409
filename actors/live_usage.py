"""Live usage: what PostgreSQL holds plus what the shard actors have read but not yet stored.

Each shard answers with its unstored deltas and the offset they sit on; PostgreSQL is read in one
snapshot with the offsets. Where an offset differs, a flush landed in between, so we ask again:
the sum is never short of a flush nor counts one twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import ray
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from actors import usage_store
from actors.accumulator import HourlyAccumulator
from actors.layout import LayoutView
from actors.sharding import shard_of
from actors.stream_id import StreamId
from actors.usage_log import stream_key
from actors.usage_shard import NAMESPACE, actor_name, snapshot

ATTEMPTS = 20


class UsageNotSettled(RuntimeError):
    """No consistent live view now: the shards kept flushing under our feet, a shard or
    PostgreSQL did not answer in time. Worth retrying shortly."""


SHARD_TIMEOUT_S = 10
# A shard whose node was lost answers ActorUnavailableError until Ray has restarted it on a node
# left (1.5-10 s measured in tests/test_multinode.py): asked again meanwhile, not given up on, so
# an invoice run that reads live usage then does not fail the tenants of that shard.
RESTART_WAIT_S = 20


class ShardDirectory:
    """Handles to the named shard actors of the layout in force, looked up on first use."""

    def __init__(self, redis_prefix: str, layout: LayoutView) -> None:
        self.redis_prefix = redis_prefix
        self.layout = layout
        # Typed as ray.get_actor gives them: Ray types no actor methods of a handle looked up by name.
        self._handles: dict[int, ray.actor.ActorHandle[Any]] = {}
        self._generation = layout.current.generation

    @property
    def count(self) -> int:
        return self.layout.current.shards

    def handle(self, shard: int) -> ray.actor.ActorHandle[Any]:
        if not ray.is_initialized():  # ray.get_actor would quietly start a new local cluster
            raise RuntimeError("this process is not connected to Ray")
        if self._generation != self.layout.current.generation:  # a shard may have been replaced
            self._handles.clear()
            self._generation = self.layout.current.generation
        if shard not in self._handles:
            self._handles[shard] = ray.get_actor(actor_name(self.redis_prefix, shard), namespace=NAMESPACE)
        return self._handles[shard]


async def live_rows(
    engine: AsyncEngine,
    directory: ShardDirectory,
    tenant_ids: Sequence[str] | None,
    start: datetime,
    end: datetime,
) -> list[usage_store.HourRow]:
    """Hourly rows, start <= hour < end, for the tenants (all when None), including unflushed usage."""
    shards = (
        sorted({shard_of(t, directory.count) for t in tenant_ids})
        if tenant_ids is not None
        else range(directory.count)
    )
    streams = {shard: stream_key(directory.redis_prefix, shard) for shard in shards}
    wanted = list(tenant_ids) if tenant_ids is not None else None
    first, last = int(start.timestamp()), int(end.timestamp())  # hour-aligned (see the API's window)
    restarting_until = time.monotonic() + RESTART_WAIT_S
    attempt = 0
    while attempt < ATTEMPTS:
        try:
            snapshots, (offsets, stored) = await asyncio.wait_for(
                asyncio.gather(
                    asyncio.gather(
                        *(snapshot(directory.handle(s), wanted, first, last) for s in shards)
                    ),
                    _stored(engine, streams, wanted, start, end),
                ),
                timeout=SHARD_TIMEOUT_S,
            )
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > restarting_until:
                raise UsageNotSettled(f"a usage shard was not back within {RESTART_WAIT_S} s") from None
            await asyncio.sleep(0.5)
            continue
        except (
            TimeoutError,
            ray.exceptions.RayError,
            RuntimeError,
            ValueError,
            SQLAlchemyError,
            OSError,
        ) as error:
            raise UsageNotSettled(f"live usage unavailable: {type(error).__name__}: {error}") from error
        if all(offsets[streams[s]] == applied for s, (applied, _) in zip(shards, snapshots)):
            return _combine(stored, [rows for _, rows in snapshots])
        attempt += 1
        await asyncio.sleep(0.01 * attempt)
    raise UsageNotSettled("shard offsets kept moving while reading live usage")


async def _stored(
    engine: AsyncEngine, streams: dict[int, str], wanted: list[str] | None, start: datetime, end: datetime
) -> tuple[dict[str, StreamId], list[usage_store.HourRow]]:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        offsets = await usage_store.last_applied(conn, streams.values())
        return offsets, await usage_store.hourly_rows(conn, wanted, start, end)


def _combine(
    stored: list[usage_store.HourRow], live: list[list[usage_store.HourRow]]
) -> list[usage_store.HourRow]:
    if not any(live):  # nothing unflushed: the stored rows are one per tenant and hour, ordered
        return stored
    total = HourlyAccumulator()
    for rows in (stored, *live):
        total.add_rows(rows)
    return total.rows()


def roll_up(rows: list[usage_store.HourRow], bucket_s: int) -> list[usage_store.HourRow]:
    """Sum hourly rows into buckets of bucket_s seconds (3600 = hour, 86400 = UTC day)."""
    buckets = HourlyAccumulator()
    buckets.add_rows((tenant, hour // bucket_s * bucket_s, q) for tenant, hour, q in rows)
    return buckets.rows()
