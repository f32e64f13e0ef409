"""The usage log: one Redis stream per shard, written by the API and read by the shard actors.

Each stream entry carries a batch of encoded events (see accumulator.encode_event). The API
appends through one Lua script per shard that, atomically, remembers each event id for the
dedup window and appends only the events not seen before: an event is either in the log and
remembered, or neither, so a retried request can never count it twice nor lose it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from actors.sharding import shard_of

CONSUMER_GROUP = "aggregator"

# ARGV: dedup key prefix, seconds to remember an id, the event ids and the encoded events, each
# joined by newlines (neither can contain one). Two joined strings instead of 2 x N arguments
# keeps packing the command off the API's hot path.
_APPEND = """
local next_line = string.gmatch(ARGV[4], '[^\\n]+')
local fresh = {}
local duplicates = 0
for id in string.gmatch(ARGV[3], '[^\\n]+') do
  local line = next_line()
  if redis.call('SET', ARGV[1] .. id, '1', 'NX', 'EX', ARGV[2]) then
    fresh[#fresh + 1] = line
  else
    duplicates = duplicates + 1
  end
end
if duplicates == 0 then
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[4])
elseif #fresh > 0 then
  redis.call('XADD', KEYS[1], '*', 'e', table.concat(fresh, '\\n'))
end
return duplicates
"""


def stream_key(prefix: str, shard: int) -> str:
    # The hash tag {shard} keeps a shard's stream and its dedup keys in one Redis Cluster slot.
    return f"{prefix}:usage:{{{shard}}}"


def dead_letter_key(prefix: str, shard: int) -> str:
    """Entries a shard could not parse, kept for an operator (see UsageShard._dead_letter)."""
    return f"{prefix}:usage-dead:{{{shard}}}"


def seen_prefix(prefix: str, shard: int) -> str:
    return f"{prefix}:seen:{{{shard}}}:"


class EncodedEvent(NamedTuple):
    tenant_id: str
    event_id: str
    line: str


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int


class UsageLog:
    """The writer side, used by the API replicas."""

    def __init__(
        self, redis: Redis, prefix: str, shards: int, dedup_window_s: int, future_skew_s: int = 300
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.shards = shards
        # An event stamped up to future_skew_s ahead may be retransmitted until the late window
        # closes behind its timestamp; a minute more, so an id is never forgotten a moment early.
        self.remember_s = dedup_window_s + future_skew_s + 60
        self._append_sha = hashlib.sha1(_APPEND.encode()).hexdigest()

    async def append(self, events: Sequence[EncodedEvent]) -> AppendResult:
        """Durably log the events; returns once Redis has them (or raises a redis error)."""
        by_shard: dict[int, tuple[list[str], list[str]]] = {}
        for tenant_id, event_id, line in events:
            shard = shard_of(tenant_id, self.shards)
            if shard not in by_shard:
                by_shard[shard] = ([], [])
            ids, lines = by_shard[shard]
            # Event ids are unique per tenant, not across tenants: two tenants may both send "42".
            ids.append(f"{tenant_id}|{event_id}")
            lines.append(line)
        calls = [
            (
                stream_key(self.prefix, shard),
                seen_prefix(self.prefix, shard),
                "\n".join(ids),
                "\n".join(lines),
            )
            for shard, (ids, lines) in by_shard.items()
        ]
        try:
            replies = await self._call(calls)
        except NoScriptError:  # a restarted or flushed Redis forgot the script
            await self.redis.script_load(_APPEND)
            replies = await self._call(calls)
        duplicates = sum(int(n) for n in replies)
        return AppendResult(accepted=len(events) - duplicates, duplicates=duplicates)

    async def _call(self, calls: list[tuple[str, str, str, str]]) -> list:
        # EVALSHA in a plain pipeline: redis-py's Script objects would send SCRIPT EXISTS first on
        # every pipeline, one more round trip per request. A NOSCRIPT reply applies nothing.
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, seen, ids, lines in calls:
                pipe.evalsha(self._append_sha, 1, stream, seen, self.remember_s, ids, lines)
            return await pipe.execute()
