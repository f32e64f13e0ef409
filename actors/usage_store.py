"""SQL for metered usage: adding deltas to usage_hourly, and reading it back; the shard layout
record and the stream offsets. Metering owns its tables, so this module lives beside the actors
that write them (infra/ imports nothing of actors/: no package cycle)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Row, and_, cast, extract, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from actors.layout import UNKNOWN, Layout, LayoutUnreadable, LayoutView
from actors.stream_id import ORIGIN, StreamId
from infra import tenant_store
from infra.database import any_of, create_engine
from infra.schema import metering_layout, usage_hourly, usage_stream_offsets
from pricing.meters import METERS

HourRow = tuple[str, int, Sequence[Decimal]]  # (tenant_id, hour epoch seconds, quantities)


def _hour(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def apply_deltas(
    conn: AsyncConnection, stream: str, last_applied: StreamId, rows: Sequence[HourRow]
) -> None:
    """Add the deltas and record the last stream entry they include. The caller's transaction
    makes the two one atomic step: that is what lets replay skip what is already counted."""
    if rows:
        columns = list(zip(*((tenant, _hour(hour), *quantities) for tenant, hour, quantities in rows)))
        await conn.execute(_ADD_DELTAS, dict(zip(_DELTA_PARAMETERS, map(list, columns))))
    await conn.execute(
        _RECORD_OFFSET, {"stream": stream, "last_ms": last_applied.ms, "last_seq": last_applied.seq}
    )


# One statement text whatever the number of rows (arrays, unnested), so SQLAlchemy compiles it
# once and asyncpg prepares it once; a VALUES list per flush compiled anew each time (16% of a
# shard's CPU, issue 15). Rows are unique per (tenant, hour): they come from one accumulator.
_METER_COLUMNS = [meter.value for meter in METERS]
_DELTA_PARAMETERS = ["tenants", "hours", *_METER_COLUMNS]
_ADD_DELTAS = text(
    f"INSERT INTO {usage_hourly.name} (tenant_id, hour_start, {', '.join(_METER_COLUMNS)}, updated_at) "
    "SELECT *, now() FROM unnest(CAST(:tenants AS text[]), CAST(:hours AS timestamptz[]), "
    + ", ".join(f"CAST(:{column} AS numeric[])" for column in _METER_COLUMNS)
    + ") ON CONFLICT (tenant_id, hour_start) DO UPDATE SET "
    + ", ".join(f"{column} = {usage_hourly.name}.{column} + excluded.{column}" for column in _METER_COLUMNS)
    + ", updated_at = excluded.updated_at"
)
_RECORD_OFFSET = text(
    f"INSERT INTO {usage_stream_offsets.name} (stream, last_ms, last_seq, updated_at) "
    "VALUES (:stream, :last_ms, :last_seq, now()) ON CONFLICT (stream) DO UPDATE SET "
    "last_ms = excluded.last_ms, last_seq = excluded.last_seq, updated_at = excluded.updated_at"
)


class LayoutChangeInProgress(RuntimeError):
    """A shard-count change to another count is under way; finish that one first."""


def _layout(row: Row[*tuple[Any, ...]]) -> Layout:
    return Layout(shards=row.shards, generation=row.generation, target=row.target_shards)


_LAYOUT_COLUMNS = (metering_layout.c.shards, metering_layout.c.generation, metering_layout.c.target_shards)


async def ensure_layout(conn: AsyncConnection, redis_prefix: str, shards: int) -> Layout:
    """The recorded layout, recording `shards` if there is none yet (the first start)."""
    await conn.execute(
        insert(metering_layout).values(redis_prefix=redis_prefix, shards=shards).on_conflict_do_nothing()
    )
    return await read_layout(conn, redis_prefix)


async def read_layout(conn: AsyncConnection, redis_prefix: str, lock: bool = False) -> Layout:
    query = select(*_LAYOUT_COLUMNS).where(metering_layout.c.redis_prefix == redis_prefix)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise LookupError(f"no shard layout recorded for {redis_prefix!r}; start the shards first")
    return _layout(row)


async def recorded_layout(database_url: str, redis_prefix: str) -> Layout:
    """The recorded layout, read on a connection of its own (tools and tests)."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await read_layout(conn, redis_prefix)
    finally:
        await engine.dispose()


def layout_view(engine: AsyncEngine, redis_prefix: str, assumed_shards: int) -> LayoutView:
    """A process's view of the recorded layout, reloaded on demand. Until the first reload it
    holds a generation no gate admits, so the first append loads the real one."""

    async def load() -> Layout:
        try:
            async with engine.connect() as conn:
                return await read_layout(conn, redis_prefix)
        except SQLAlchemyError as error:
            raise LayoutUnreadable(f"{type(error).__name__}: {error}") from error

    return LayoutView(Layout(assumed_shards, UNKNOWN), load)


async def begin_layout_change(conn: AsyncConnection, redis_prefix: str, target: int) -> Layout:
    """Mark a change to `target` shards as under way (or find that same change unfinished)."""
    layout = await read_layout(conn, redis_prefix, lock=True)
    if layout.changing and layout.target != target:
        raise LayoutChangeInProgress(
            f"a change from {layout.shards} to {layout.target} shards is unfinished; run it to the end first"
        )
    if layout.shards == target and not layout.changing:
        return layout
    await conn.execute(
        update(metering_layout)
        .where(metering_layout.c.redis_prefix == redis_prefix)
        .values(target_shards=target, changed_at=datetime.now(UTC))
    )
    return Layout(layout.shards, layout.generation, target)


async def finish_layout_change(conn: AsyncConnection, redis_prefix: str, target: int) -> Layout:
    result = await conn.execute(
        update(metering_layout)
        .where(metering_layout.c.redis_prefix == redis_prefix, metering_layout.c.target_shards == target)
        .values(
            shards=target,
            generation=metering_layout.c.generation + 1,
            target_shards=None,
            changed_at=datetime.now(UTC),
        )
        .returning(*_LAYOUT_COLUMNS)
    )
    return _layout(result.one())


async def claim_stream(conn: AsyncConnection, stream: str) -> tuple[StreamId, int]:
    """Take over a stream: its last applied entry, and a new epoch that fences off every older
    instance of its shard (their flushes check the epoch under the same row lock)."""
    claim = (
        insert(usage_stream_offsets)
        .values(stream=stream, last_ms=0, last_seq=0, epoch=1)
        .on_conflict_do_update(index_elements=["stream"], set_={"epoch": usage_stream_offsets.c.epoch + 1})
        .returning(usage_stream_offsets.c.last_ms, usage_stream_offsets.c.last_seq, usage_stream_offsets.c.epoch)
    )
    row = (await conn.execute(claim)).one()
    return StreamId(row.last_ms, row.last_seq), row.epoch


async def locked_offset(conn: AsyncConnection, stream: str) -> tuple[StreamId, int]:
    """The recorded offset and epoch, row-locked until the caller's transaction ends."""
    result = await conn.execute(
        select(usage_stream_offsets.c.last_ms, usage_stream_offsets.c.last_seq, usage_stream_offsets.c.epoch)
        .where(usage_stream_offsets.c.stream == stream)
        .with_for_update()
    )
    row = result.first()
    return (StreamId(row.last_ms, row.last_seq), row.epoch) if row else (ORIGIN, 0)


async def current_epoch(conn: AsyncConnection, stream: str) -> int:
    result = await conn.execute(
        select(usage_stream_offsets.c.epoch).where(usage_stream_offsets.c.stream == stream)
    )
    return result.scalar() or 0


async def last_applied(conn: AsyncConnection, streams: Iterable[str]) -> dict[str, StreamId]:
    names = list(streams)
    result = await conn.execute(
        select(
            usage_stream_offsets.c.stream, usage_stream_offsets.c.last_ms, usage_stream_offsets.c.last_seq
        ).where(any_of(usage_stream_offsets.c.stream, names))
    )
    found = {row.stream: StreamId(row.last_ms, row.last_seq) for row in result}
    return {name: found.get(name, ORIGIN) for name in names}


async def hourly_rows(
    conn: AsyncConnection, tenant_ids: Iterable[str] | None, start: datetime, end: datetime
) -> list[HourRow]:
    """Persisted rows with start <= hour < end, for the given tenants (all when None), ordered by
    tenant then hour. The hour comes as epoch seconds from the database: an invoice run reads
    hundreds of thousands of rows, and a datetime made per row only to be turned into an int was
    a tenth of reading them."""
    epoch = cast(extract("epoch", usage_hourly.c.hour_start), BigInteger)
    query = (
        select(usage_hourly.c.tenant_id, epoch, *(usage_hourly.c[m.value] for m in METERS))
        .where(and_(usage_hourly.c.hour_start >= start, usage_hourly.c.hour_start < end))
        .order_by(usage_hourly.c.tenant_id.collate("C"), usage_hourly.c.hour_start)  # Python's order
    )
    if tenant_ids is not None:
        query = query.where(any_of(usage_hourly.c.tenant_id, tenant_ids))
    result = await conn.execute(query)
    return [(row[0], row[1], list(row[2:])) for row in result.all()]


async def tiers_of(engine: AsyncEngine, tenant_ids: Iterable[str]) -> dict[str, str]:
    """Each known tenant's tier, for usage grouped by tier (finance's live view)."""
    async with engine.connect() as conn:
        return await tenant_store.tiers_of(conn, tenant_ids)
