"""The usage log: one Redis stream per shard, written by the API and read by the shard actors.

Each stream entry carries a batch of encoded events (see accumulator.encode_event). The API
appends through one Lua script per shard that, atomically, remembers each event id for the
dedup window and appends only the events not seen before: an event is either in the log and
remembered, or neither, so a retried request can never count it twice nor lose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from actors.sharding import shard_of

CONSUMER_GROUP = "aggregator"

_APPEND = """
local fresh = {}
local duplicates = 0
for i = 3, #ARGV, 2 do
  if redis.call('SET', ARGV[1] .. ARGV[i], '1', 'NX', 'EX', ARGV[2]) then
    fresh[#fresh + 1] = ARGV[i + 1]
  else
    duplicates = duplicates + 1
  end
end
if #fresh > 0 then
  redis.call('XADD', KEYS[1], '*', 'e', table.concat(fresh, '\\n'))
end
return duplicates
"""


def stream_key(prefix: str, shard: int) -> str:
    # The hash tag {shard} keeps a shard's stream and its dedup keys in one Redis Cluster slot.
    return f"{prefix}:usage:{{{shard}}}"


def seen_prefix(prefix: str, shard: int) -> str:
    return f"{prefix}:seen:{{{shard}}}:"


@dataclass(frozen=True)
class EncodedEvent:
    tenant_id: str
    event_id: str
    line: str


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int


class UsageLog:
    """The writer side, used by the API replicas."""

    def __init__(self, redis: Redis, prefix: str, shards: int, dedup_window_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.shards = shards
        # A minute beyond the window, so an id is never forgotten a moment early.
        self.remember_s = dedup_window_s + 60
        self._append = redis.register_script(_APPEND)

    async def append(self, events: Sequence[EncodedEvent]) -> AppendResult:
        """Durably log the events; returns once Redis has them (or raises a redis error)."""
        by_shard: dict[int, list[str]] = {}
        for event in events:
            args = by_shard.setdefault(shard_of(event.tenant_id, self.shards), [])
            args.append(event.event_id)
            args.append(event.line)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, args in by_shard.items():
                await self._append(
                    keys=[stream_key(self.prefix, shard)],
                    args=[seen_prefix(self.prefix, shard), self.remember_s, *args],
                    client=pipe,
                )
            duplicates = sum(int(n) for n in await pipe.execute())
        return AppendResult(accepted=len(events) - duplicates, duplicates=duplicates)
