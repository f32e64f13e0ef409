"""The one way to emit a webhook event: `await outbox.record(conn, type, tenant_id, data)` (or
`record_many` for a batch), called inside the transaction of the change the event tells of.

The event row and one delivery row per endpoint subscribed at that moment (fan-out at record time:
an endpoint's history is fixed when the event happens, and the worker has nothing to work out) are
written on the caller's connection, so they commit with the change or roll back with it: an event
is never seen for a change that did not happen, and never lost for one that did. The delivery
workers (notifications/delivery_worker.py) send it after the commit, woken by it
(notifications/wakeup.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from infra import webhook_store
from notifications import wakeup
from notifications.events import EventType, event_body, new_event_id

MAX_BODY_BYTES = 256 * 1024  # what one webhook may carry; larger data is a bug of the caller


async def record(
    conn: AsyncConnection,
    type_: EventType | str,
    tenant_id: str | None,
    data: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> str:
    """Record an event in the caller's transaction; its id (the webhook-id). `data` holds JSON
    values, or Decimal (sent as its exact decimal string), UUID and datetime (ISO 8601)."""
    (event_id,) = await record_many(conn, [Event(EventType(type_), tenant_id, data)], at=at)
    return event_id


@dataclass(frozen=True)
class Event:
    """One event to record: what happened, to whom, and what the webhook says of it."""

    type: EventType
    tenant_id: str | None
    data: Mapping[str, Any]


async def record_many(
    conn: AsyncConnection, events: Sequence[Event], *, at: datetime | None = None
) -> list[str]:
    """Record events in the caller's transaction, in two statements whatever their number (an
    invoice run's batch finalizes hundreds of invoices at once); their ids, in order."""
    moment = at or datetime.now(UTC)
    rows = [_row(new_event_id(), event, moment) for event in events]
    if await webhook_store.record_events(conn, rows):
        await wakeup.notify(conn)  # the workers send them as soon as this transaction commits
    return [row["event_id"] for row in rows]


def _row(event_id: str, event: Event, at: datetime) -> dict[str, Any]:
    encoded = orjson.dumps(event_body(event_id, event.type, at, event.data), default=_exact)
    if len(encoded) > MAX_BODY_BYTES:
        raise ValueError(f"a {event.type} event's body exceeds {MAX_BODY_BYTES} bytes")
    return {
        "event_id": event_id,
        "type": event.type.value,
        "tenant_id": event.tenant_id,
        "body": orjson.loads(encoded),
    }


def _exact(value: object) -> str:
    # orjson writes uuid.UUID itself, not subclasses such as the UUIDs asyncpg returns.
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")
