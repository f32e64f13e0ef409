"""UsageShard: the Ray actor that owns one shard of the usage log.

It reads its Redis stream through a consumer group, sums tenant x meter x hour deltas in memory,
and every flush interval adds them to usage_hourly in ONE transaction that also records the last
stream entry applied; only then does it XACK.

Each instance (Ray re-runs __init__ after a crash, and the memory is gone) first claims the stream
in PostgreSQL, raising its epoch, and reads through a consumer group of its own created right after
the recorded entry: every entry not yet stored is delivered again, in order, and none twice. An
older instance that is still running (presumed dead, e.g. behind a partition) loses its group and
has its flushes refused under the offset's row lock, so it can neither count nor take anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypedDict, TypeVar

import ray
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT, XReadGroupResponse

from actors import usage_store
from actors.accumulator import HourlyAccumulator
from actors.stream_id import ORIGIN, StreamId
from actors.usage_log import CONSUMER_GROUP, dead_letter_key, stream_key
from infra import metrics, redis_client
from infra.database import create_engine
from infra.settings import RedisConnection, Settings

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# A stream entry as the shard's client reads it (RESP2, bytes): id and fields (None: deleted).
Entry = tuple[bytes, dict[bytes, bytes] | None]

NAMESPACE = "billing"
READ_COUNT = 200
READ_BLOCK_MS = 100
# Stop reading while this many events wait for PostgreSQL: the stream holds the rest safely.
MAX_UNFLUSHED_EVENTS = 2_000_000
# A snapshot of an instance still starting (e.g. waiting for PostgreSQL) fails rather than hangs.
SNAPSHOT_WAIT_S = 5
# What a shard reserves of Ray's logical "memory" resource (see shard_actor); CPU-bound tasks ask
# for CPUs, so this takes nothing from them.
SHARD_MEMORY_BYTES = 64 * 1024 * 1024


def actor_name(redis_prefix: str, shard: int) -> str:
    # Named by the deployment's usage log, so two deployments (or a test's own) share a cluster.
    return f"{redis_prefix}:usage-shard-{shard}"


@dataclass(frozen=True)
class ShardConfig:
    """What a shard needs of the settings. Ray keeps an actor's arguments for as long as it may
    restart it, so a shard gets these rather than every setting, payment secrets included."""

    database_url: str
    redis: RedisConnection
    redis_prefix: str
    flush_interval_s: float

    @classmethod
    def of(cls, settings: Settings) -> ShardConfig:
        return cls(
            settings.resolved_database_url(),
            settings.redis_connection(),
            settings.redis_prefix,
            settings.flush_interval_s,
        )


def shard_actor(shard: int, settings: Settings) -> ray.actor.ActorHandle[Any]:
    """The running actor of a shard, started if there is none (detached: it outlives callers).

    SPREAD: the shards go to different nodes, so losing one node stops few of them, and their
    reads and flushes use every node. It is soft: on one node, or after a node is lost, Ray
    restarts the actor (max_restarts=-1) on any node left, and it resumes from the offset in
    PostgreSQL (a NodeAffinity pin would wait for the lost node instead). The memory reservation
    is what makes the strategy apply: Ray places an actor that asks for no resource at all on any
    node, SPREAD or soft affinity notwithstanding (three shards landed on one node of three;
    issue 18)."""
    # mypy applies no class decorator: to it UsageShard is the plain class, not the ActorClass that
    # @ray.remote made of it. Ray types none of a handle's methods: call them through those below.
    actor_class: Any = UsageShard
    handle: ray.actor.ActorHandle[Any] = actor_class.options(
        name=actor_name(settings.redis_prefix, shard),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy="SPREAD",
        memory=SHARD_MEMORY_BYTES,
    ).remote(shard, ShardConfig.of(settings))
    return handle


# A shard's methods, called on its handle. Ray gives every method of a handle the type Never, so
# mypy would take the code after a call for unreachable and check none of it; these are typed.


def ready(handle: ray.actor.ActorHandle[Any]) -> ray.ObjectRef[bool]:
    """UsageShard.ready: True once the shard has claimed its stream."""
    return handle.ready.remote()


def flush(handle: ray.actor.ActorHandle[Any]) -> ray.ObjectRef[StreamId]:
    """UsageShard.flush: the last entry the shard has stored."""
    return handle.flush.remote()


def snapshot(
    handle: ray.actor.ActorHandle[Any], tenant_ids: list[str] | None, start: int, end: int
) -> ray.ObjectRef[tuple[StreamId, list[usage_store.HourRow]]]:
    """UsageShard.snapshot: its unstored rows, and the offset they sit on."""
    return handle.snapshot.remote(tenant_ids, start, end)


def status(handle: ray.actor.ActorHandle[Any]) -> ray.ObjectRef[ShardStatus]:
    """UsageShard.status."""
    return handle.status.remote()


class ShardStatus(TypedDict):
    shard: int
    stream: str
    applied: str  # a stream entry id
    read_up_to: str
    unflushed_events: int
    unsettled_batches: int


class Superseded(RuntimeError):
    """Another instance of this shard has claimed the stream since this one started."""


@dataclass
class _Batch:
    """Deltas read from the stream up to `up_to`, with the entry ids to acknowledge once stored."""

    deltas: HourlyAccumulator = field(default_factory=HourlyAccumulator)
    up_to: StreamId = ORIGIN
    acks: list[bytes] = field(default_factory=list)


@ray.remote(max_restarts=-1, max_task_retries=3, num_cpus=0)
class UsageShard:
    def __init__(self, shard: int, config: ShardConfig) -> None:
        self.shard = shard
        self.config = config
        self.stream = stream_key(config.redis_prefix, shard)
        self.consumer = f"shard-{shard}"
        self.applied = ORIGIN  # last entry known to be in PostgreSQL
        self.epoch = 0  # this instance's claim on the stream (see usage_store.claim_stream)
        self.reading = _Batch()
        # Batches whose commit failed or whose outcome is unknown, oldest first. They stay
        # visible to live queries and are settled against the recorded offset on the next flush.
        self.unsettled: list[_Batch] = []
        self.flush_lock = asyncio.Lock()
        # With replicas (BILLING_REDIS_MIN_REPLICAS_ACKED), the replication id of the primary the
        # entries are read from, and whether the reader must read again from `applied` because a
        # failover promoted a replica that lacks what was read (see _primary_still_holds_them).
        self.primary = ""
        self.reread = False
        self.started = asyncio.Event()
        self.engine = create_engine(config.database_url, pool_size=2)
        # A timeout well above the read's BLOCK, so a half-open connection cannot hang the loop.
        # No silent retries: a read re-sent by the client after its reply was lost would hide
        # the loss from _read_loop, which must rewind the group when that happens.
        self.redis = redis_client.connect(
            config.redis, socket_timeout=10, socket_connect_timeout=5, retry=Retry(NoBackoff(), 0)
        )
        self.dead = dead_letter_key(config.redis_prefix, shard)
        self.tasks = [asyncio.get_event_loop().create_task(self._run())]
        self.tasks[0].add_done_callback(_exit_if_failed)

    # ---- the loops -------------------------------------------------------------------------

    async def _run(self) -> None:
        await self._retry(self._claim_stream)
        await self._retry(self._ensure_group)  # after the claim: the group is named by the epoch
        self.primary = await self._retry(self._primary_id)
        self.reading.up_to = self.applied
        self.started.set()
        flusher = asyncio.get_event_loop().create_task(self._flush_loop())
        flusher.add_done_callback(_exit_if_failed)
        self.tasks.append(flusher)
        await self._read_loop()

    async def _retry(self, step: Callable[[], Awaitable[_T]]) -> _T:
        while True:
            try:
                return await step()
            except Exception as error:  # noqa: BLE001 - a dependency is down; wait for it
                log.warning("shard %s: %s failed (%s); retrying", self.shard, step.__name__, error)
                await asyncio.sleep(1)

    async def _claim_stream(self) -> None:
        async with self.engine.begin() as conn:
            self.applied, self.epoch = await usage_store.claim_stream(conn, self.stream)

    @property
    def group(self) -> str:
        return f"{CONSUMER_GROUP}:{self.epoch}"

    async def _ensure_group(self) -> None:
        """This instance's own consumer group, starting right after the recorded offset, so it
        reads every later entry in order; the groups of older instances are removed, so a
        presumed-dead instance still running can take nothing from this one."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=str(self.applied), mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        for group in await self.redis.xinfo_groups(self.stream):
            name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
            if (name == CONSUMER_GROUP or name.startswith(f"{CONSUMER_GROUP}:")) and name != self.group:
                await self.redis.xgroup_destroy(self.stream, name)

    async def _read_loop(self) -> None:
        rewind = False
        while True:
            if self._unflushed_events() >= MAX_UNFLUSHED_EVENTS:
                await asyncio.sleep(0.1)
                continue
            try:
                if rewind or self.reread:
                    await self._rewind()
                    rewind = False
                reply = await self.redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
                )
            except ResponseError as error:
                if "NOGROUP" in str(error):
                    rewind = not await self._regrouped()
                    continue
                # e.g. UNBLOCKED by a failover or MISCONF: wait and read again, never give up
                log.warning("shard %s: reading the stream was refused (%s)", self.shard, error)
                rewind = True
                await asyncio.sleep(0.5)
                continue
            except (RedisError, OSError) as error:
                log.warning("shard %s: reading the stream failed (%s)", self.shard, error)
                rewind = True
                await asyncio.sleep(0.5)
                continue
            await self._take(_entries(reply))

    async def _rewind(self) -> None:
        """After a failed read: Redis may have marked entries delivered to us and then lost the
        reply (a reset connection, Redis killed while it fsynced). Reading on with ">" would skip
        them for good, so the group goes back to the last entry this instance holds. After a
        failover (a read fails when the old primary goes), that is `applied` if the new primary
        lacks what was read (_primary_still_holds_them): checked here, before the first read from
        it, since a later entry of its own would pass for the lost ones."""
        async with self.flush_lock:
            if self.reread or not await self._primary_still_holds_them():
                self.reading, self.reread = _Batch(up_to=self.applied), False
            await self.redis.xgroup_setid(self.stream, self.group, id=str(self.reading.up_to))

    async def _regrouped(self) -> bool:
        try:
            await self._regroup()
            return True
        except (RedisError, OSError) as error:
            log.warning("shard %s: recreating the consumer group failed (%s)", self.shard, error)
            await asyncio.sleep(0.5)
            return False

    async def _regroup(self) -> None:
        """Our group is gone: either a newer instance claimed the stream (then stop), or Redis
        lost its data. A stream whose last id is behind what we stored was born again (a Redis
        clock behind ours would otherwise hide its entries below our offset), so we store what we
        hold, reset the offset, and read the new stream from its start."""
        async with self.engine.connect() as conn:
            if await usage_store.current_epoch(conn, self.stream) != self.epoch:
                _exit_superseded(self.shard)
        last = await self._last_generated_id()
        if last < self.reading.up_to:
            log.warning(
                "shard %s: the stream was lost (last id %s < %s); starting over",
                self.shard,
                last,
                self.reading.up_to,
            )
            await self._retry(self._restart_stream)
        else:
            log.warning("shard %s: consumer group lost; recreating", self.shard)
        await self.redis.xgroup_create(self.stream, self.group, id=str(self.reading.up_to), mkstream=True)

    async def _last_generated_id(self) -> StreamId:
        try:
            return StreamId.parse((await self.redis.xinfo_stream(self.stream))["last-generated-id"])
        except ResponseError:  # no such key: the stream is gone altogether
            return ORIGIN

    async def _restart_stream(self) -> None:
        await self.flush()  # what was read from the old stream is stored under the old offset
        async with self.flush_lock:
            async with self.engine.begin() as conn:
                _, epoch = await usage_store.locked_offset(conn, self.stream)
                if epoch != self.epoch:
                    _exit_superseded(self.shard)
                await usage_store.apply_deltas(conn, self.stream, ORIGIN, [])
            self.applied = self.reading.up_to = ORIGIN

    async def _take(self, entries: list[Entry]) -> None:
        batch = self.reading
        for entry_id, fields in entries:
            batch.acks.append(entry_id)
            position = StreamId.parse(entry_id)
            if position <= batch.up_to or not fields:
                continue
            try:
                # Parsed on its own first, so an entry counts whole or not at all.
                entry = HourlyAccumulator()
                entry.add_encoded(fields[b"e"].decode())
            except (ValueError, ArithmeticError, KeyError, UnicodeDecodeError) as error:
                await self._dead_letter(entry_id, fields, error)
            else:
                batch.deltas.merge(entry)
            batch.up_to = position

    async def _dead_letter(self, entry_id: bytes, fields: dict[bytes, bytes], error: Exception) -> None:
        """Set aside an entry that cannot be parsed, rather than stall the shard behind it
        forever. It is kept, with the reason, for an operator; it is not counted."""
        log.error(
            "shard %s: entry %s cannot be parsed (%s); moved to %s", self.shard, entry_id, error, self.dead
        )
        metrics.entries_dead_lettered.inc(tags={"shard": str(self.shard)})
        kept: dict[FieldT, EncodableT] = dict(fields.items())
        kept[b"entry"], kept[b"error"] = entry_id, repr(error)
        await self._retry(lambda: self.redis.xadd(self.dead, kept))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("shard %s: flush failed", self.shard)
            await self._report_lag()

    # ---- flushing ----------------------------------------------------------------------------

    async def flush(self) -> StreamId:
        """Store everything read so far; returns the last entry now in PostgreSQL."""
        async with self.flush_lock:
            batch, self.reading = self.reading, _Batch(up_to=self.reading.up_to)
            if batch.acks:
                self.unsettled.append(batch)
            if not self.unsettled or self.reread:
                return self.applied
            if not await self._primary_still_holds_them():
                return self.applied
            if not await self.redis.replicated():  # stored later, once the replicas have it
                metrics.flush_failures.inc(tags={"shard": str(self.shard)})
                return self.applied
            started = time.perf_counter()
            try:
                async with self.engine.begin() as conn:
                    recorded, epoch = await usage_store.locked_offset(conn, self.stream)
                    if epoch != self.epoch:
                        raise Superseded(f"{self.stream} was claimed by epoch {epoch}; this is {self.epoch}")
                    # A batch at or below the recorded offset did commit, though we never heard.
                    remaining = [b for b in self.unsettled if b.up_to > recorded]
                    if remaining:
                        merged = _merge(remaining)
                        await usage_store.apply_deltas(conn, self.stream, remaining[-1].up_to, merged.rows())
            except Superseded:
                _exit_superseded(self.shard)
            except Exception:
                metrics.flush_failures.inc(tags={"shard": str(self.shard)})
                raise
            settled, self.unsettled = self.unsettled, []
            self.applied = settled[-1].up_to
            metrics.flush_seconds.observe(time.perf_counter() - started, tags={"shard": str(self.shard)})
            metrics.events_aggregated.inc(
                sum(b.deltas.events for b in settled), tags={"shard": str(self.shard)}
            )
            await self._acknowledge([entry for b in settled for entry in b.acks])
            return self.applied

    async def _acknowledge(self, entry_ids: list[bytes]) -> None:
        # Best effort: an entry left pending is harmless, since a new instance reads through a new
        # group from the recorded offset. Trimming keeps the stream to what is not yet stored.
        try:
            if entry_ids:
                await self.redis.xack(self.stream, self.group, *entry_ids)
            await self.redis.xtrim(self.stream, minid=str(self.applied), approximate=True)
        except (RedisError, OSError) as error:
            log.warning("shard %s: acknowledging failed (%s)", self.shard, error)

    async def _primary_id(self) -> str:
        if self.redis.replicas_acked <= 0:
            return ""
        return str((await self.redis.info("replication"))["master_replid"])

    async def _primary_still_holds_them(self) -> bool:
        """Whether what was read can be stored: with replicas, after a failover, only if the new
        primary holds the last entry read (replication keeps a stream's order, so then it holds
        them all). If it does not, the entries were on the old primary alone, their appends were
        answered 503 (a 202 means a replica held them, and Sentinel promotes the replica furthest
        along) and the kernel sends them again: stored as well, they would count twice. So they
        are forgotten and the reader reads again from `applied` on the new primary."""
        primary = await self._primary_id()
        if primary == self.primary:
            return True
        last = max(b.up_to for b in [*self.unsettled, self.reading])
        if last > self.applied and not await self.redis.xrange(self.stream, min=str(last), max=str(last)):
            log.warning(
                "shard %s: the new Redis primary lacks entry %s read from the old one; reading again from %s",
                self.shard,
                last,
                self.applied,
            )
            self.unsettled.clear()
            self.reread = True
        self.primary = primary
        return not self.reread

    async def _report_lag(self) -> None:
        # Every round, idle or not: a gauge not set for a while drops out of the scrape.
        try:
            metrics.stream_length.set(await self.redis.xlen(self.stream), tags={"shard": str(self.shard)})
        except (RedisError, OSError):
            pass  # the read loop reports Redis being away

    def _unflushed_events(self) -> int:
        return self.reading.deltas.events + sum(b.deltas.events for b in self.unsettled)

    # ---- what callers ask ----------------------------------------------------------------------

    async def ready(self) -> bool:
        await self.started.wait()
        return True

    async def snapshot(
        self, tenant_ids: list[str] | None, start: int, end: int
    ) -> tuple[StreamId, list[usage_store.HourRow]]:
        """What is read but not yet in PostgreSQL, with the offset it sits on top of. A caller
        that reads PostgreSQL at that same offset and adds these rows sees the live total."""
        await asyncio.wait_for(self.started.wait(), timeout=SNAPSHOT_WAIT_S)
        merged = _merge([*self.unsettled, self.reading])
        selected = merged.select(tenant_ids, start, end)
        rows: list[usage_store.HourRow] = [(t, h, list(q)) for (t, h), q in selected]
        return self.applied, rows

    async def status(self) -> ShardStatus:
        return {
            "shard": self.shard,
            "stream": self.stream,
            "applied": str(self.applied),
            "read_up_to": str(self.reading.up_to),
            "unflushed_events": self._unflushed_events(),
            "unsettled_batches": len(self.unsettled),
        }


def _exit_superseded(shard: int) -> NoReturn:
    # A newer instance owns the stream (this one was presumed dead): count nothing more, stop.
    log.critical("shard %s: superseded by a newer instance; exiting", shard)
    os._exit(1)


def _entries(reply: XReadGroupResponse) -> list[Entry]:
    """The entries of a reply to XREADGROUP on one stream, RESP2: [[stream, [(id, fields), ...]]]."""
    if not reply:
        return []
    if not isinstance(reply, list):
        raise TypeError(f"XREADGROUP answered a {type(reply).__name__}: the shard's client speaks RESP2")
    entries: list[Entry] = reply[0][1]
    return entries


def _exit_if_failed(task: asyncio.Task[None]) -> None:
    # A loop that dies would leave a live-looking actor that reads nothing. Exiting instead lets
    # Ray restart the actor, which resumes from the offset recorded in PostgreSQL.
    if not task.cancelled() and task.exception() is not None:
        log.critical("usage shard loop failed; exiting for a restart", exc_info=task.exception())
        os._exit(1)


def _merge(batches: list[_Batch]) -> HourlyAccumulator:
    merged = HourlyAccumulator()
    for batch in batches:
        merged.merge(batch.deltas)
    return merged
