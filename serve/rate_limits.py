"""Per-client rate limits, shared by every API replica through Redis (issue 7).

The client is the authenticated JWT subject: every limited route runs `authorized`, which calls
`admit` once it knows the caller. Routes reached without a token (health probes, which a load
balancer must never see refused, and provider webhooks, which prove themselves by signature and
are retried by the provider on any refusal) are not limited.

The algorithm is a fixed one-second window per client and class of route, counted by one Lua
script (a single round trip, atomic across replicas): INCR the client's counter and, when it has
no expiry yet, give it one of a second. Chosen over a sliding log or a GCRA bucket because:
- its meaning is what the setting says: at most N requests in each window of one second that a
  client's first request opens (a burst of 2N across a window edge is possible, which is fine
  for a limit whose job is to stop a runaway client, not to meter it);
- the window is timed by Redis's clock, never a replica's, so replicas with skewed clocks still
  share one window;
- refused requests count too but cannot extend the window: a client hammering while refused is
  let in again a second after its window opened, and Retry-After says exactly when;
- it costs one key of a few bytes per active client, gone a second after it goes quiet, and
  O(1) work in Redis. Ingest counts inside the usage log's append script (the same counter, the
  same round trip as the events), so its hot path pays no round trip for the limit at all.

If Redis does not answer, requests are let through (fail open) and counted in
`billing_rate_limit_unavailable`: a limiter must never turn a working API into 500s, and ingest
answers its own 503 when it needs Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from actors.usage_log import RateCheck
from infra import metrics
from infra.settings import Settings
from serve.problems import Problem

log = logging.getLogger(__name__)

WINDOW_MS = 1000
_COUNT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
_COUNT_SHA = hashlib.sha1(_COUNT.encode()).hexdigest()
INGEST_ROUTES = frozenset({("POST", "/api/v1/usage")})
WARN_EVERY_S = 60.0
_last_warning = 0.0


@dataclass(frozen=True)
class RateLimit:
    name: str  # the class of routes, also the metric label and part of the Redis key
    per_second: int  # requests per client per second; 0 or less: unlimited
    setting: str  # the environment variable that sets it, named in a 429's detail

    def refusal(self, retry_after_s: int) -> Problem:
        return Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"this client may make at most {self.per_second} requests per second to {self.name} "
            f"routes ({self.setting}); retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


def limit_for(settings: Settings, method: str, path: str) -> RateLimit:
    if (method, path) in INGEST_ROUTES:
        return RateLimit("ingest", settings.rate_limit_ingest, "BILLING_RATE_LIMIT_INGEST")
    return RateLimit("api", settings.rate_limit_default, "BILLING_RATE_LIMIT_DEFAULT")


async def admit(request: Request, client: str) -> None:
    """Count this request against its client's limit; a 429 Problem when it is over."""
    services = request.app.state.services
    limit = limit_for(services.settings, request.method, request.scope["route"].path)
    if limit.per_second <= 0:
        return
    key = f"{services.settings.redis_prefix}:rate:{limit.name}:{client}"
    if limit.name == "ingest":
        # Counted by the usage log's append, in the same round trip (see actors/usage_log.py);
        # over the limit, that appends nothing and the route answers this limit's 429.
        request.state.rate_limit = (limit, RateCheck(key, limit.per_second, WINDOW_MS))
        return
    try:
        count, ttl_ms = await _count(services.redis, key)
    except (RedisError, OSError) as error:
        metrics.rate_limit_unavailable.inc()
        _warn(error)
        return
    if count > limit.per_second:
        metrics.rate_limited.inc(tags={"limit": limit.name})
        raise limit.refusal(max(1, math.ceil(ttl_ms / 1000)))


async def _count(redis: Redis, key: str) -> tuple[int, int]:
    """(requests in the client's window so far, this one included; ms until it closes)."""
    try:
        count, ttl_ms = await redis.evalsha(_COUNT_SHA, 1, key, WINDOW_MS)
    except NoScriptError:  # a restarted or flushed Redis forgot it; EVAL caches it again
        count, ttl_ms = await redis.eval(_COUNT, 1, key, WINDOW_MS)
    return int(count), int(ttl_ms)


def _warn(error: Exception) -> None:
    # Once a minute, not once a request: with Redis down every request would log otherwise.
    global _last_warning
    if time.monotonic() - _last_warning >= WARN_EVERY_S:
        _last_warning = time.monotonic()
        log.warning("rate limits not enforced: Redis did not answer (%s)", error)
