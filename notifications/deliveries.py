"""Webhook deliveries: what was sent where, each attempt's answer, and a replay."""

from __future__ import annotations

import uuid
from typing import Any

from infra import webhook_store
from notifications.context import NotificationContext
from notifications.endpoints import owned_endpoint
from notifications.errors import Forbidden, NotFound
from notifications.records import Attempt, Caller, Delivery

MAX_LISTED = 200


class EndpointDisabled(RuntimeError):
    """A delivery to a disabled or deleted endpoint cannot be replayed."""


def delivery_record(row: Any, attempts: list[Any]) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id,
        event_id=row.event_id,
        event_type=row.event_type,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempts=tuple(Attempt(a.attempted_at, a.status_code, a.error, a.duration_ms) for a in attempts),
        next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
        delivered_at=row.delivered_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
    )


async def list_deliveries(
    ctx: NotificationContext, caller: Caller, endpoint_id: uuid.UUID | None, limit: int = 50
) -> tuple[Delivery, ...]:
    """The newest deliveries to one endpoint, or to all the caller's endpoints, with attempts."""
    async with ctx.engine.connect() as conn:
        if endpoint_id is not None:
            endpoint_ids = [(await owned_endpoint(conn, caller, endpoint_id)).endpoint_id]
        else:
            endpoint_ids = [row.endpoint_id for row in await webhook_store.list_endpoints(conn, caller.tenant_id)]
        rows = await webhook_store.list_deliveries(conn, endpoint_ids, min(limit, MAX_LISTED)) if endpoint_ids else []
        attempts = await webhook_store.attempts_of(conn, [row.delivery_id for row in rows])
    return tuple(delivery_record(row, attempts[row.delivery_id]) for row in rows)


async def replay_delivery(ctx: NotificationContext, caller: Caller, delivery_id: uuid.UUID) -> Delivery:
    """Send a delivery again now, with the same webhook-id, and retry it for a new window."""
    async with ctx.engine.begin() as conn:
        row = await webhook_store.find_delivery(conn, delivery_id)
        if row is None:
            raise NotFound("webhook delivery", str(delivery_id))
        endpoint = await webhook_store.find_endpoint(conn, row.endpoint_id, for_update=True)
        if endpoint is None or not caller.may_manage(endpoint.tenant_id):
            raise Forbidden("a tenant token manages only its own endpoints")
        if endpoint.deleted_at is not None or not endpoint.enabled:
            raise EndpointDisabled(endpoint.disabled_reason or "the endpoint is deleted")
        await webhook_store.replay(conn, delivery_id, ctx.retry_window_s)
        row = await webhook_store.find_delivery(conn, delivery_id)
        attempts = await webhook_store.attempts_of(conn, [delivery_id])
    return delivery_record(row, attempts[delivery_id])
