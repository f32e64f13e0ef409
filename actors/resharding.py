"""Changing the number of usage shards on a running system: freeze, drain, move, resume.

A tenant's shard is crc32(tenant) % count, so a new count moves tenants, and with them their
dedup memory (`seen:{shard}:tenant|event`). The change therefore:

1. records the target in PostgreSQL (under an advisory lock: one change at a time);
2. freezes every shard's gate, so no writer appends anywhere (appends are atomic, so every one
   already made is in a stream; API replicas wait, then answer 503 with Retry-After);
3. drains: each shard stores everything its stream holds;
4. moves each dedup key to the shard its tenant now hashes to, keeping its expiry, so a retry of
   an event accepted before the change is still a duplicate after it;
5. starts the actors of new shards, records the new count with a new generation, opens the
   gates to writers of that generation, and stops the actors of removed shards (drained).

Every step can be run again: a change cut off anywhere is finished by running it again with the
same target. Writers holding the old layout are refused by the gates and reload it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

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
    # New shards' actors start before the freeze (they read nothing until writers reach them).
    await asyncio.gather(*(shard_actor(shard, settings).ready.remote() for shard in range(target)))
    started = time.monotonic()
    await freeze_gates(redis, prefix, range(max(layout.shards, target)))
    report(f"{prefix}: {layout.shards} -> {target} shards: gates frozen, draining")
    await _drain(settings, redis, range(layout.shards))
    drained = time.monotonic()
    moved = await _move_dedup_keys(redis, prefix, target)
    report(
        f"{prefix}: drained in {drained - started:.2f} s; {moved} dedup keys moved to their new shards "
        f"in {time.monotonic() - drained:.2f} s"
    )
    async with engine.begin() as conn:
        done = await usage_store.finish_layout_change(conn, prefix, target)
    report(
        f"{prefix}: now {done.shards} shards (generation {done.generation}); "
        f"writers were held for {time.monotonic() - started:.2f} s"
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


async def _move_dedup_keys(redis: Redis, prefix: str, target: int) -> int:
    """One pass over every dedup key of the usage log (a SCAN walks the whole keyspace, so one
    pass, not one per shard), moving each whose tenant hashes elsewhere now."""
    moved = 0
    async for page in _pages(redis, seen_root(prefix)):
        moves = []
        for key in page:
            shard, tenant_event = _parse_seen(key, prefix)
            new_shard = shard_of(tenant_event.split(b"|", 1)[0].decode(), target)
            if new_shard != shard:
                moves.append((key, seen_prefix(prefix, new_shard).encode() + tenant_event))
        moved += await _move(redis, moves)
    return moved


def _parse_seen(key: bytes, prefix: str) -> tuple[int, bytes]:
    """(shard, b"tenant|event") of a dedup key: seen_root, then "{shard}:tenant|event"."""
    shard, _, tenant_event = key[len(seen_root(prefix)) + 1 :].partition(b"}:")
    return int(shard), tenant_event


async def _pages(redis: Redis, key_prefix: str):
    cursor = 0
    while True:
        cursor, keys = await redis.scan(cursor, match=f"{key_prefix}*", count=SCAN_PAGE)
        if keys:
            yield keys
        if cursor == 0:
            return


async def _move(redis: Redis, moves: list[tuple[bytes, bytes]]) -> int:
    """Copy each key under its new name with the time it had left, then delete the old one: cut
    off in between, a key exists twice, which a second run tidies (SET NX, DEL)."""
    if not moves:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for old, _ in moves:
            pipe.pttl(old)
        ttls = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for (old, new), ttl in zip(moves, ttls):
            if ttl == -2:  # expired meanwhile: nothing to remember
                continue
            pipe.set(new, "1", nx=True, px=ttl if ttl > 0 else None)
            pipe.delete(old)
        await pipe.execute()
    return sum(1 for ttl in ttls if ttl != -2)


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
