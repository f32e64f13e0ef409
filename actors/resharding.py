"""Changing the number of usage shards on a running system: copy, freeze, drain, resume.

A tenant's shard is crc32(tenant) % count, so a new count moves tenants, and with them their
dedup memory (`seen:{shard}:tenant|event`): an event sent again after the change must find its
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

from actors.layout import Layout, freeze_gates, open_gates
from actors.sharding import shard_of
from actors.stream_id import ORIGIN, StreamId
from actors.usage_log import seen_prefix, seen_root, stream_key
from actors.usage_shard import NAMESPACE, actor_name, shard_actor
from infra import usage_store
from infra.database import create_engine
from infra.settings import Settings
from infra.usage_store import LayoutChangeInProgress

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
    engine = create_engine(settings.database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url, socket_timeout=30)
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


async def _change(settings: Settings, engine, redis: Redis, layout: Layout, report) -> Layout:
    prefix, target = settings.redis_prefix, layout.target
    assert target is not None
    await asyncio.gather(*(shard_actor(shard, settings).ready.remote() for shard in range(target)))
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
                applied = await handle.flush.remote()
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
    """Copy each remembered id not where its tenant is under `shards` to that place, with the
    time it had left (SET NX: a copy a writer already made, or an earlier run, stays)."""
    copied = 0
    async for page in _misplaced(redis, prefix, shards):
        async with redis.pipeline(transaction=False) as pipe:
            for key, _ in page:
                pipe.pttl(key)
            ttls = await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            for (_, new_key), ttl in zip(page, ttls):
                if ttl != -2:  # -2: expired meanwhile, nothing to remember
                    pipe.set(new_key, "1", nx=True, px=ttl if ttl > 0 else None)
            copied += sum(1 for done in await pipe.execute() if done)
    return copied


async def _drop_misplaced_ids(redis: Redis, prefix: str, shards: int) -> int:
    """Delete the ids left where tenants no longer are: no writer of the layout looks there."""
    dropped = 0
    async for page in _misplaced(redis, prefix, shards):
        dropped += await redis.delete(*(key for key, _ in page))
    return dropped


async def _misplaced(redis: Redis, prefix: str, shards: int) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """Pages of (dedup key, where it belongs under `shards`) for keys not there. One SCAN over the
    keyspace for all shards: it walks every key of the database, whatever the pattern."""
    root = seen_root(prefix)
    cursor = 0
    while True:
        cursor, keys = await redis.scan(cursor, match=f"{root}*", count=SCAN_PAGE)
        page = []
        for key in keys:
            shard, tenant_event = _parse_seen(key, root)
            belongs = shard_of(tenant_event.split(b"|", 1)[0].decode(), shards)
            if belongs != shard:
                page.append((key, seen_prefix(prefix, belongs).encode() + tenant_event))
        if page:
            yield page
        if cursor == 0:
            return


def _parse_seen(key: bytes, root: str) -> tuple[int, bytes]:
    """(shard, b"tenant|event") of a dedup key: root, then "{shard}:tenant|event"."""
    shard, _, tenant_event = key[len(root) + 1 :].partition(b"}:")
    return int(shard), tenant_event


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
