"""Changing the number of usage shards on a running system: copy, freeze, drain, resume.

A tenant's shard is crc32(tenant) % count, so a new count moves tenants, and with them their
dedup memory (`seen:{shard}:h<hour>`, sets of "tenant|event"): an event sent again after the change must find its
id where its tenant now is. The change:

1. records the target in PostgreSQL (under an advisory lock: one change at a time) and starts
   the actors of new shards;
2. sets every gate to the changing layout's token: writers (refused until they reload the
   layout) go on appending to the current shards, and remember each new id at the tenant's
   future shard too;
3. copies every id remembered before that to the tenant's future shard, with the time it had
   left. Ingest goes on meanwhile: this is the long part, one SCAN over the keyspace;
4. freezes the gates (nothing is appended anywhere; writers wait, then answer 503 Retry-After)
   and drains: each shard stores everything its stream holds. Only this step holds writers;
5. records the new count with a new generation and opens the gates to writers of it, stops the
   actors of removed shards (drained), and deletes the ids left where tenants no longer are.

Every step can be run again: a change cut off anywhere is finished by running it again with the
same target (a freeze cut off is lifted by step 2 of the next run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

import ray
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from actors import usage_store
from actors.layout import Layout, freeze_gates, open_gates
from actors.sharding import shard_of
from actors.stream_id import ORIGIN, StreamId
from actors.usage_log import seen_key, seen_root, stream_key
from actors.usage_shard import NAMESPACE, actor_name, flush, ready, shard_actor
from actors.usage_store import LayoutChangeInProgress
from infra import redis_client
from infra.database import create_engine
from infra.settings import Settings

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 120
SCAN_PAGE = 20_000


class DrainTimedOut(RuntimeError):
    """A shard did not store its stream in time (is PostgreSQL up?). The layout stays frozen;
    run the change again once the shard catches up."""


async def change_shard_count(
    settings: Settings, target: int, report: Callable[[str], None] = log.info
) -> Layout:
    """Move the usage log of `settings.redis_prefix` to `target` shards; the layout now in force.
    The caller is connected to the Ray cluster that runs the shard actors."""
    if target < 1:
        raise ValueError("a usage log needs at least 1 shard")
    engine = create_engine(settings.resolved_database_url(), pool_size=2)
    redis = redis_client.connect(settings.redis_connection(), socket_timeout=30)
    prefix = settings.redis_prefix
    try:
        async with engine.connect() as lock:
            # Held for the whole change: a second `billing shards set` waits for nobody, it stops.
            if not await lock.scalar(
                text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": f"reshard:{prefix}"}
            ):
                raise LayoutChangeInProgress(f"another shard-count change of {prefix!r} is running")
            async with engine.begin() as conn:
                layout = await usage_store.begin_layout_change(conn, prefix, target)
            if layout.changing:
                layout = await _change(settings, engine, redis, layout, report)
            await open_gates(redis, prefix, layout)  # again, for a change cut off after its commit
            _stop_actors_from(settings, layout.shards)
            dropped = await _drop_misplaced_ids(redis, prefix, layout.shards)
            report(f"{prefix}: {dropped} remembered ids deleted where their tenants no longer are")
            await lock.execute(
                text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": f"reshard:{prefix}"}
            )
            return layout
    finally:
        await redis.aclose()
        await engine.dispose()


async def _change(
    settings: Settings, engine: AsyncEngine, redis: Redis, layout: Layout, report: Callable[[str], None]
) -> Layout:
    prefix, target = settings.redis_prefix, layout.target
    assert target is not None
    await asyncio.gather(*(ready(shard_actor(shard, settings)) for shard in range(target)))
    await open_gates(redis, prefix, layout)  # writers now remember new ids at both places
    began = time.monotonic()
    copied = await _copy_misplaced_ids(redis, prefix, target)
    report(
        f"{prefix}: {copied} remembered ids copied for {target} shards in {time.monotonic() - began:.2f} s"
    )
    frozen = time.monotonic()
    await freeze_gates(redis, prefix, range(max(layout.shards, target)))
    await _drain(settings, redis, range(layout.shards))
    async with engine.begin() as conn:
        done = await usage_store.finish_layout_change(conn, prefix, target)
    await open_gates(redis, prefix, done)
    report(
        f"{prefix}: now {done.shards} shards (generation {done.generation}); "
        f"writers were held for {time.monotonic() - frozen:.2f} s"
    )
    return done


async def _drain(settings: Settings, redis: Redis, shards: Iterable[int]) -> None:
    """Until each shard has stored the last entry its stream ever received."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    for shard in shards:
        handle = shard_actor(shard, settings)
        last = await _last_entry(redis, stream_key(settings.redis_prefix, shard))
        while True:
            try:
                applied = await flush(handle)
            except ray.exceptions.RayError as error:
                log.warning("shard %s: flush failed while draining (%s); retrying", shard, error)
                applied = ORIGIN
            if applied >= last:
                break
            if time.monotonic() > deadline:
                raise DrainTimedOut(f"shard {shard} stored up to {applied}, its stream holds {last}")
            await asyncio.sleep(0.05)


async def _last_entry(redis: Redis, stream: str) -> StreamId:
    if not await redis.exists(stream):
        return ORIGIN
    return StreamId.parse((await redis.xinfo_stream(stream))["last-generated-id"])


async def _copy_misplaced_ids(redis: Redis, prefix: str, shards: int) -> int:
    """Copy each remembered id not where its tenant is under `shards` to that shard's set of the
    same hour, with the time it had left (SADD: a copy a writer already made, or an earlier run,
    stays; a set writers made already has its expiry)."""
    copied = 0
    async for key, target, members in _misplaced(redis, prefix, shards):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.pttl(key)
            pipe.sadd(target, *members)
            pipe.pttl(target)
            left, added, target_left = await pipe.execute()
        if left > 0 and target_left == -1:  # -2: the source expired meanwhile; -1: no expiry
            await redis.pexpire(target, left)
        copied += added
    return copied


async def _drop_misplaced_ids(redis: Redis, prefix: str, shards: int) -> int:
    """Delete the ids left where tenants no longer are: no writer of the layout looks there."""
    dropped = 0
    async for key, _, members in _misplaced(redis, prefix, shards):
        dropped += await redis.srem(key, *members)
    return dropped


async def _misplaced(redis: Redis, prefix: str, shards: int) -> AsyncIterator[tuple[bytes, str, list[bytes]]]:
    """(dedup set, the set of the same hour where they belong under `shards`, ids) for the ids
    not there, a page at a time. One SCAN over the keyspace for all shards (it walks every key of
    the database, whatever the pattern), one SSCAN per set: a set per shard and hour."""
    root = seen_root(prefix)
    async for key in redis.scan_iter(match=f"{root}*", count=SCAN_PAGE):
        shard, hour = _parse_seen(key, root)
        cursor = 0
        while True:
            cursor, members = await redis.sscan(key, cursor, count=SCAN_PAGE)
            moving: dict[int, list[bytes]] = {}
            for member in map(_raw, members):
                belongs = shard_of(member.split(b"|", 1)[0].decode(), shards)
                if belongs != shard:
                    moving.setdefault(belongs, []).append(member)
            for belongs, page in moving.items():
                yield key, seen_key(prefix, belongs, hour), page
            if cursor == 0:
                break


def _raw(value: bytes | str) -> bytes:
    """A value as the service's clients get them: bytes (they are made without decode_responses)."""
    if not isinstance(value, bytes):
        raise TypeError(f"Redis answered a {type(value).__name__}: the client decodes responses")
    return value


def _parse_seen(key: bytes, root: str) -> tuple[int, int]:
    """(shard, hour) of a dedup set: root, then "{shard}:h<hour>"."""
    shard, _, hour = key[len(root) + 1 :].partition(b"}:h")
    return int(shard), int(hour)


def _stop_actors_from(settings: Settings, first: int) -> None:
    """Stop the actors of shards at or beyond `first`: after a shrink they hold nothing (drained)
    and their gates stay frozen."""
    shard = first
    while True:
        try:
            handle = ray.get_actor(actor_name(settings.redis_prefix, shard), namespace=NAMESPACE)
        except ValueError:
            return
        ray.kill(handle, no_restart=True)
        shard += 1
