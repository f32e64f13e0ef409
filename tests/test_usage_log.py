"""The usage log's append script: of a batch with duplicates, exactly the new events are logged,
in order, whatever hours they span."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from decimal import Decimal

from redis.asyncio import Redis

from actors.accumulator import encode_event
from actors.usage_log import EncodedEvent, stream_key
from tests.metering_support import gated_log

# The ids of an hour are remembered until the hour's late window has passed: this hour's are.
HOUR = int(time.time()) // 3600 * 3600


def _event(tenant: str, n: int, hour: int) -> EncodedEvent:
    return EncodedEvent(tenant, f"e{n}", encode_event(tenant, hour, (Decimal(n), 0, 0, 0, 1)), hour)


def test_only_the_new_events_of_a_batch_are_logged_in_their_order(settings):
    prefix = f"log-{uuid.uuid4().hex[:8]}"
    tenant = "t"
    first = [_event(tenant, n, HOUR + 3600 * (n % 2)) for n in range(6)]
    again = [first[4], _event(tenant, 6, HOUR), first[1], _event(tenant, 7, HOUR + 3600), first[4]]

    async def append_twice() -> tuple[list[int], list[str]]:
        redis = Redis.from_url(settings.redis_url)
        try:
            log = await gated_log(redis, replace(settings, redis_prefix=prefix))
            results = [await log.append(batch) for batch in (first, again)]
            entries = await redis.xrange(stream_key(prefix, 0))
            return [r.duplicates for r in results], [entry[b"e"].decode() for _, entry in entries]
        finally:
            for key in [key async for key in redis.scan_iter(f"{prefix}:*")]:
                await redis.delete(key)
            await redis.aclose()

    duplicates, entries = asyncio.run(append_twice())
    assert duplicates == [0, 3]
    # The writer orders a batch by hour; of the second batch only events 6 and 7 are new.
    assert entries[1].split("\n") == [_event(tenant, 6, HOUR).line, _event(tenant, 7, HOUR + 3600).line]
    assert sorted(entries[0].split("\n")) == sorted(event.line for event in first)
