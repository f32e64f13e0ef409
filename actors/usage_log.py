"""The usage log: one Redis stream per shard, written by the API and read by the shard actors.

Each stream entry carries a batch of encoded events (see accumulator.encode_event). The API
appends through one Lua script per shard that, atomically, remembers each event id for the
dedup window and appends only the events not seen before: an event is either in the log and
remembered, or neither, so a retried request can never count it twice nor lose it. The same
step checks the shard's gate (see actors.layout): a writer whose layout is not the one the shard
admits appends nothing there, reloads the layout and sends those events again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from actors.layout import FROZEN, LayoutView, gate_key, open_gates
from actors.sharding import shard_of

CONSUMER_GROUP = "aggregator"

# KEYS: the stream and its gate. ARGV: dedup key prefix, seconds to remember an id, the event ids
# and the encoded events, each joined by newlines (neither can contain one), the writer's gate
# token, and, while a shard-count change is under way, the shard each event's tenant moves to
# ("-" where it stays) with the dedup root: the id is then remembered there too (see
# actors/resharding.py). Joined strings instead of N arguments keep packing off the hot path.
_APPEND = """
local gate = redis.call('GET', KEYS[2])
if gate ~= ARGV[5] then
  return redis.error_reply('LAYOUT ' .. (gate or 'none'))
end
local next_line = string.gmatch(ARGV[4], '[^\\n]+')
local next_move = string.gmatch(ARGV[6], '[^\\n]+')
local moving = ARGV[6] ~= ''
local fresh = {}
local duplicates = 0
for id in string.gmatch(ARGV[3], '[^\\n]+') do
  local line = next_line()
  local move = moving and next_move()
  if redis.call('SET', ARGV[1] .. id, '1', 'NX', 'EX', ARGV[2]) then
    fresh[#fresh + 1] = line
    if move and move ~= '-' then
      redis.call('SET', ARGV[7] .. '{' .. move .. '}:' .. id, '1', 'NX', 'EX', ARGV[2])
    end
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


def seen_root(prefix: str) -> str:
    return f"{prefix}:seen:"


def seen_prefix(prefix: str, shard: int) -> str:
    """Dedup keys of a shard: this, then "tenant|event"."""
    return f"{seen_root(prefix)}{{{shard}}}:"


class EncodedEvent(NamedTuple):
    tenant_id: str
    event_id: str
    line: str


@dataclass(frozen=True)
class AppendResult:
    accepted: int
    duplicates: int


class LayoutChanging(RuntimeError):
    """The shards these events belong to stayed frozen by a shard-count change for longer than
    a request should wait. Events of other shards may have been appended: sending the request
    again is safe, since they are then reported as duplicates."""


# How long an append waits for a layout change to finish before giving up (503, retry).
LAYOUT_WAIT_S = 5.0


class UsageLog:
    """The writer side, used by the API replicas."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        layout: LayoutView,
        dedup_window_s: int,
        future_skew_s: int = 300,
        layout_wait_s: float = LAYOUT_WAIT_S,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.layout = layout
        self.layout_wait_s = layout_wait_s
        # An event stamped up to future_skew_s ahead may be retransmitted until the late window
        # closes behind its timestamp; a minute more, so an id is never forgotten a moment early.
        self.remember_s = dedup_window_s + future_skew_s + 60
        self._append_sha = hashlib.sha1(_APPEND.encode()).hexdigest()

    async def append(self, events: Sequence[EncodedEvent]) -> AppendResult:
        """Durably log the events; returns once Redis has them (or raises a redis error, or
        LayoutChanging)."""
        accepted = duplicates = 0
        pending = list(events)
        deadline = time.monotonic() + self.layout_wait_s
        while True:
            by_shard = self._by_shard(pending)
            replies = await self._call(by_shard)
            pending, refusals = [], set()
            for (shard, shard_events), reply in zip(by_shard.items(), replies):
                if isinstance(reply, NoScriptError):  # a restarted or flushed Redis forgot it
                    pending += shard_events
                elif isinstance(reply, ResponseError) and str(reply).startswith("LAYOUT"):
                    pending += shard_events
                    refusals.add(str(reply).split(" ", 1)[1])
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    duplicates += int(reply)
                    accepted += len(shard_events) - int(reply)
            if not pending:
                return AppendResult(accepted=accepted, duplicates=duplicates)
            if time.monotonic() > deadline:
                raise LayoutChanging(f"{len(pending)} events wait for a shard-count change")
            await self._recover(refusals)

    def _by_shard(self, events: list[EncodedEvent]) -> dict[int, list[EncodedEvent]]:
        shards = self.layout.current.shards
        by_shard: dict[int, list[EncodedEvent]] = {}
        for event in events:
            by_shard.setdefault(shard_of(event.tenant_id, shards), []).append(event)
        return by_shard

    async def _recover(self, refusals: set[str]) -> None:
        """Whatever refused us: load the script again, and reload the layout when a gate
        refused it (restoring gates a Redis lost, if the layout is settled)."""
        await self.redis.script_load(_APPEND)
        if not refusals:
            return
        layout = await self.layout.refresh()
        if "none" in refusals and not layout.changing:
            await open_gates(self.redis, self.prefix, layout, only_missing=True)
        if FROZEN in refusals:
            await asyncio.sleep(0.05)  # a change is draining the shards: wait for the gates to open

    async def _call(self, by_shard: dict[int, list[EncodedEvent]]) -> list:
        # EVALSHA in a plain pipeline: redis-py's Script objects would send SCRIPT EXISTS first on
        # every pipeline, one more round trip per request. A refused call appends nothing.
        layout = self.layout.current
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, shard_events in by_shard.items():
                pipe.evalsha(
                    self._append_sha,
                    2,
                    stream_key(self.prefix, shard),
                    gate_key(self.prefix, shard),
                    seen_prefix(self.prefix, shard),
                    self.remember_s,
                    # Event ids are unique per tenant, not across tenants: two may both send "42".
                    "\n".join(f"{e.tenant_id}|{e.event_id}" for e in shard_events),
                    "\n".join(e.line for e in shard_events),
                    layout.token,
                    _moves(shard_events, shard, layout.target),
                    seen_root(self.prefix),
                )
            return await pipe.execute(raise_on_error=False)


def _moves(events: list[EncodedEvent], shard: int, target: int | None) -> str:
    """Where each event's tenant moves under a change to `target` shards ("-": it stays)."""
    if target is None:
        return ""
    moves = (shard_of(e.tenant_id, target) for e in events)
    return "\n".join("-" if move == shard else str(move) for move in moves)
