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
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from actors.layout import FROZEN, LayoutView, gate_key, open_gates
from actors.sharding import shard_of

CONSUMER_GROUP = "aggregator"

# KEYS: the stream and its gate. ARGV: the shard's dedup root, seconds to remember an id after its
# hour ends, the event ids ("tenant|event"; a line "#<hour>" starts the ids of that UTC hour) and the
# encoded events (one per id), each joined by newlines (neither can contain one), the writer's gate
# token, and, while a shard-count change is under way, the shard each event's tenant moves to
# ("-" where it stays) with the dedup root: the id is then remembered there too (see
# actors/resharding.py); then the client's rate-limit key ("" for none), its limit per second and
# window in ms, and "1" on the request's first call, which counts it. Joined strings instead of N
# arguments keep packing off the hot path.
#
# Ids are remembered in one set per shard and hour of the events' timestamps, which expires when
# no event of that hour can be accepted any more (issue 15). Per hour: one SMISMEMBER, one SADD of
# the new ids, so Redis (and its AOF) handles one command per hour, not one key per event: ~2 us
# of Redis CPU per event with `appendfsync always`, where SET NX EX per id took ~5, and ~90 bytes
# per id, where a key per id took ~175.
_APPEND = """
local gate = redis.call('GET', KEYS[2])
if gate ~= ARGV[5] then
  return redis.error_reply('LAYOUT ' .. (gate or 'none'))
end
if ARGV[8] ~= '' then  -- the client's rate limit (serve/rate_limits.py): key, per second, window
  local count
  if ARGV[11] == '1' then
    count = redis.call('INCR', ARGV[8])
    if redis.call('PTTL', ARGV[8]) < 0 then redis.call('PEXPIRE', ARGV[8], ARGV[10]) end
  else  -- the request's other shards: counted once, by its first call just before this one
    count = tonumber(redis.call('GET', ARGV[8]) or '0')
  end
  if count > tonumber(ARGV[9]) then
    local ttl = redis.call('PTTL', ARGV[8])
    return redis.error_reply('RATE ' .. (ttl > 0 and ttl or ARGV[10]))
  end
end
local keep = tonumber(ARGV[2])
local moves = {}
for move in string.gmatch(ARGV[6], '[^\\n]+') do moves[#moves + 1] = move end
local fresh, duplicates, index = {}, 0, 0
local CHUNK = 4000  -- unpack() is bounded by Lua's C stack

local function add(key, members, hour)
  for first = 1, #members, CHUNK do
    redis.call('SADD', key, unpack(members, first, math.min(first + CHUNK - 1, #members)))
  end
  redis.call('EXPIREAT', key, tonumber(hour) + 3600 + keep)
end

local function settle(hour, ids, at)
  local bucket = ARGV[1] .. 'h' .. hour
  local new, seen, elsewhere = {}, {}, {}
  for first = 1, #ids, CHUNK do
    local last = math.min(first + CHUNK - 1, #ids)
    local known = redis.call('SMISMEMBER', bucket, unpack(ids, first, last))
    for i = first, last do
      local id = ids[i]
      if known[i - first + 1] == 0 and not seen[id] then
        seen[id] = true
        new[#new + 1] = id
        fresh[#fresh + 1] = at[i]  -- the event's place in ARGV[4]
        local move = moves[at[i]]
        if move and move ~= '-' then
          elsewhere[move] = elsewhere[move] or {}
          table.insert(elsewhere[move], id)
        end
      else
        duplicates = duplicates + 1
      end
    end
  end
  if #new > 0 then add(bucket, new, hour) end
  for move, members in pairs(elsewhere) do add(ARGV[7] .. '{' .. move .. '}:h' .. hour, members, hour) end
end

local hour, ids, at = nil, {}, {}
for id in string.gmatch(ARGV[3], '[^\\n]+') do
  if string.byte(id, 1) == 35 then  -- '#': the ids that follow are of this hour
    if hour then settle(hour, ids, at) end
    hour, ids, at = string.sub(id, 2), {}, {}
  else
    index = index + 1
    ids[#ids + 1] = id
    at[#at + 1] = index
  end
end
if hour then settle(hour, ids, at) end
if duplicates == 0 then
  redis.call('XADD', KEYS[1], '*', 'e', ARGV[4])
elseif #fresh > 0 then
  -- Only a batch with duplicates is split into its lines (splitting every batch was a fifth of
  -- the script's time): the new ones are appended.
  local lines, kept = {}, {}
  for line in string.gmatch(ARGV[4], '[^\\n]+') do lines[#lines + 1] = line end
  for i, at in ipairs(fresh) do kept[i] = lines[at] end
  redis.call('XADD', KEYS[1], '*', 'e', table.concat(kept, '\\n'))
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
    """Dedup sets of a shard: this, then "h<hour>" (epoch seconds of the UTC hour of the events'
    timestamps); their members are "tenant|event"."""
    return f"{seen_root(prefix)}{{{shard}}}:"


def seen_key(prefix: str, shard: int, hour: int) -> str:
    """The set of the ids of a shard's events stamped in `hour`."""
    return f"{seen_prefix(prefix, shard)}h{hour}"


class EncodedEvent(NamedTuple):
    tenant_id: str
    event_id: str
    line: str  # "tenant \t hour \t quantities...": see accumulator.encode_event
    hour: int  # the line's hour, as the writer made it (reading it back from the line costs more)


class RateCheck(NamedTuple):
    """A client's rate limit, checked by the append itself (serve/rate_limits.py)."""

    key: str
    per_second: int
    window_ms: int


class RateLimited(RuntimeError):
    """The client is over its rate limit: nothing of the request was appended."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(f"over the rate limit for {retry_after_ms} ms more")
        self.retry_after_ms = retry_after_ms


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
        # An event may be retransmitted (and accepted) until the late window closes behind its
        # timestamp, so an hour's ids are kept that long after the hour (dedup_window_s >=
        # late_window_s), plus the future skew and a minute for clocks that disagree.
        self.remember_s = dedup_window_s + future_skew_s + 60
        self._append_sha = hashlib.sha1(_APPEND.encode()).hexdigest()

    async def append(self, events: Sequence[EncodedEvent], rate: RateCheck | None = None) -> AppendResult:
        """Durably log the events; returns once Redis has them (or raises a redis error,
        LayoutChanging, or RateLimited: the client is over `rate`, and nothing was appended)."""
        accepted = duplicates = 0
        pending = list(events)
        deadline = time.monotonic() + self.layout_wait_s
        while True:
            by_shard = self._by_shard(pending)
            replies = await self._call(by_shard, rate)
            if replies and not isinstance(replies[0], Exception):
                rate = None  # counted (by the first call); events sent again were admitted
            pending, refusals = [], set()
            for (shard, shard_events), reply in zip(by_shard.items(), replies):
                if isinstance(reply, ResponseError) and str(reply).startswith("RATE "):
                    raise RateLimited(int(str(reply).split(" ", 1)[1]))
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
        tenant_shards: dict[str, int] = {}  # a batch holds many events of each of a few tenants
        for event in events:
            shard = tenant_shards.get(event.tenant_id)
            if shard is None:
                shard = tenant_shards[event.tenant_id] = shard_of(event.tenant_id, shards)
            by_shard.setdefault(shard, []).append(event)
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

    async def _call(self, by_shard: dict[int, list[EncodedEvent]], rate: RateCheck | None) -> list[Any]:
        # EVALSHA in a plain pipeline: redis-py's Script objects would send SCRIPT EXISTS first on
        # every pipeline, one more round trip per request. A refused call appends nothing.
        layout = self.layout.current
        first = next(iter(by_shard), None)
        async with self.redis.pipeline(transaction=False) as pipe:
            for shard, shard_events in by_shard.items():
                ordered = _by_hour(shard_events)
                pipe.evalsha(
                    self._append_sha,
                    2,
                    stream_key(self.prefix, shard),
                    gate_key(self.prefix, shard),
                    seen_prefix(self.prefix, shard),
                    self.remember_s,
                    # Event ids are unique per tenant, not across tenants: two may both send "42".
                    _ids(ordered),
                    "\n".join(e.line for e in ordered),
                    layout.token,
                    _moves(ordered, shard, layout.target),
                    seen_root(self.prefix),
                    *_rate_arguments(rate, counts=shard == first),
                )
            return await pipe.execute(raise_on_error=False)


def _rate_arguments(rate: RateCheck | None, counts: bool) -> tuple[str | int, ...]:
    if rate is None:
        return ("", "", "", "")
    return (rate.key, rate.per_second, rate.window_ms, "1" if counts else "0")


def _by_hour(events: list[EncodedEvent]) -> list[EncodedEvent]:
    """The events grouped by hour (a batch is nearly always of one or two hours)."""
    hours = {event.hour for event in events}
    if len(hours) == 1:
        return events
    return sorted(events, key=lambda event: event.hour)


def _ids(events: list[EncodedEvent]) -> str:
    """ "#<hour>" before the ids of each hour, then "tenant|event" per event (see _APPEND)."""
    parts: list[str] = []
    hour = None
    for event in events:
        if event.hour != hour:
            hour = event.hour
            parts.append(f"#{hour}")
        parts.append(f"{event.tenant_id}|{event.event_id}")
    return "\n".join(parts)


def _moves(events: list[EncodedEvent], shard: int, target: int | None) -> str:
    """Where each event's tenant moves under a change to `target` shards ("-": it stays)."""
    if target is None:
        return ""
    moves = (shard_of(e.tenant_id, target) for e in events)
    return "\n".join("-" if move == shard else str(move) for move in moves)
