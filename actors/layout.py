"""The shard layout: how many shards the usage log has, and the gates that keep writers on it.

PostgreSQL records the layout (shard count and a generation raised by every change); each
shard's stream has a gate key in Redis, in the stream's hash slot, holding the token of the
layout whose writers it admits (see Layout.token), or FROZEN while a change drains it. The append
script checks the gate in the same atomic step as the dedup check and the XADD, so a writer
holding an old layout can never append to the wrong shard (nor miss a dedup key that moved): it
is refused, reloads, and retries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

FROZEN = "frozen"
UNKNOWN = 0  # the generation of a layout not yet read: every gate refuses it


@dataclass(frozen=True)
class Layout:
    shards: int
    generation: int
    # The shard count being moved to while a change is under way (gates frozen), else None.
    target: int | None = None

    @property
    def changing(self) -> bool:
        return self.target is not None

    @property
    def token(self) -> str:
        """What a gate holds to admit writers of this layout. While a change is under way its
        writers also remember each id where the tenant moves to, so the token names the target."""
        return str(self.generation) if self.target is None else f"{self.generation}>{self.target}"


def gate_key(prefix: str, shard: int) -> str:
    return f"{prefix}:usage-gate:{{{shard}}}"


async def open_gates(redis: Redis, prefix: str, layout: Layout, only_missing: bool = False) -> None:
    """Admit writers of this layout to its shards. `only_missing` restores gates a Redis lost
    without overriding a freeze that a change may have set meanwhile."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in range(layout.shards):
            pipe.set(gate_key(prefix, shard), layout.token, nx=only_missing)
        await pipe.execute()


async def freeze_gates(redis: Redis, prefix: str, shards: Iterable[int]) -> None:
    """Refuse every writer on these shards; appends already made stay in the streams."""
    async with redis.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.set(gate_key(prefix, shard), FROZEN)
        await pipe.execute()


class LayoutUnreadable(RuntimeError):
    """The recorded layout could not be read (PostgreSQL is unreachable); try again later. Raised
    instead of the driver's error so the API's edge needs no SQL types to answer 503."""


class LayoutView:
    """One process's copy of the layout, reloaded from the record when a gate refuses it (or
    periodically), shared by its writer and its live-usage reader."""

    def __init__(self, current: Layout, load: Callable[[], Awaitable[Layout]]) -> None:
        self.current = current
        self._load = load

    async def refresh(self) -> Layout:
        self.current = await self._load()
        return self.current

    @classmethod
    def fixed(cls, layout: Layout) -> LayoutView:
        """A view that never changes (tools and tests that own their layout)."""

        async def same() -> Layout:
            return layout

        return cls(layout, same)
