"""The one way to emit a webhook event: `await outbox.record(conn, type, tenant_id, data)`,
called inside the transaction of the change the event tells of.

The event row and one delivery row per endpoint subscribed at that moment (fan-out at record time:
an endpoint's history is fixed when the event happens, and the worker has nothing to work out) are
written on the caller's connection, so they commit with the change or roll back with it: an event
is never seen for a change that did not happen, and never lost for one that did. The delivery
workers (notifications/delivery_worker.py) send it after the commit, woken by it
(notifications/wakeup.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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
    event_type = EventType(type_)
    event_id = new_event_id()
    encoded = orjson.dumps(event_body(event_id, event_type, at or datetime.now(UTC), data), default=_exact)
    if len(encoded) > MAX_BODY_BYTES:
        raise ValueError(f"a {event_type} event's body exceeds {MAX_BODY_BYTES} bytes")
    body = orjson.loads(encoded)
    if await webhook_store.record_event(conn, event_id, event_type.value, tenant_id, body):
        await wakeup.notify(conn)  # the workers send it as soon as this transaction commits
    return event_id


def _exact(value: object) -> str:
    # orjson writes uuid.UUID itself, not subclasses such as the UUIDs asyncpg returns.
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")
