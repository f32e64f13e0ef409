"""Webhook endpoints, one use case each: create, list, get, delete, rotate the secret.

A tenant's caller manages its own endpoints, which receive its own events; billing-admin manages
any, and may make platform endpoints (no tenant) that receive every tenant's events. The URL is
checked when the endpoint is made (its addresses now) and again before every delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from infra import alert_store, webhook_store
from notifications.context import NotificationContext
from notifications.errors import Forbidden, InvalidField, NotFound
from notifications.events import subscription
from notifications.records import Caller, Endpoint, EndpointSecret
from notifications.signing import new_secret
from notifications.targets import check_address, parse_url

FIELDS = {"url", "event_types", "tenant_id"}


def endpoint_record(row: Any) -> Endpoint:
    return Endpoint(
        endpoint_id=row.endpoint_id,
        tenant_id=row.tenant_id,
        url=row.url,
        event_types=tuple(row.event_types),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        previous_secret_until=row.previous_secret_until,
    )


async def create_endpoint(ctx: NotificationContext, caller: Caller, request: Mapping[str, Any]) -> EndpointSecret:
    """A new endpoint from `{"url", "event_types", "tenant_id"?}`, with its secret (shown once)."""
    tenant_id = request.get("tenant_id", caller.tenant_id)
    if tenant_id is not None and not isinstance(tenant_id, str):
        raise InvalidField("tenant_id", "must be a tenant id")
    if not caller.may_manage(tenant_id):
        raise Forbidden("a tenant token manages only its own endpoints")
    unknown = sorted(set(request) - FIELDS)
    if unknown:
        raise InvalidField(unknown[0], "is not a field of a webhook endpoint")
    target = parse_url(request.get("url"))
    event_types = subscription(request.get("event_types"))
    await _check_target_now(target.host, target.port, ctx.allow_private)
    secret = new_secret()
    async with ctx.engine.begin() as conn:
        if tenant_id is not None and await alert_store.tenant_currency(conn, tenant_id) is None:
            raise InvalidField("tenant_id", f"{tenant_id!r} is not a registered tenant")
        row = await webhook_store.insert_endpoint(conn, ctx.cipher, tenant_id, target.url, event_types, secret)
    return EndpointSecret(endpoint_record(row), secret)


async def list_endpoints(ctx: NotificationContext, caller: Caller, tenant_id: str | None = None) -> tuple[Endpoint, ...]:
    """The caller's endpoints (billing-admin: all, or one tenant's)."""
    if not caller.may_manage(tenant_id if tenant_id is not None else caller.tenant_id):
        raise Forbidden("a tenant token manages only its own endpoints")
    async with ctx.engine.connect() as conn:
        rows = await webhook_store.list_endpoints(conn, tenant_id or caller.tenant_id)
    return tuple(endpoint_record(row) for row in rows)


async def get_endpoint(ctx: NotificationContext, caller: Caller, endpoint_id: uuid.UUID) -> Endpoint:
    async with ctx.engine.connect() as conn:
        row = await owned_endpoint(conn, caller, endpoint_id)
    return endpoint_record(row)


async def delete_endpoint(ctx: NotificationContext, caller: Caller, endpoint_id: uuid.UUID) -> None:
    """Delete the endpoint; what it had still to receive is cancelled, its history kept."""
    async with ctx.engine.begin() as conn:
        await owned_endpoint(conn, caller, endpoint_id, for_update=True)
        await webhook_store.delete_endpoint(conn, endpoint_id)


async def rotate_secret(ctx: NotificationContext, caller: Caller, endpoint_id: uuid.UUID) -> EndpointSecret:
    """A new secret; the old one keeps signing (a second signature) for the grace period."""
    secret = new_secret()
    async with ctx.engine.begin() as conn:
        await owned_endpoint(conn, caller, endpoint_id, for_update=True)
        row = await webhook_store.rotate_secret(conn, ctx.cipher, endpoint_id, secret, ctx.secret_grace_s)
    return EndpointSecret(endpoint_record(row), secret)


async def owned_endpoint(conn: Any, caller: Caller, endpoint_id: uuid.UUID, *, for_update: bool = False) -> Any:
    """The endpoint, if the caller may manage it: another tenant's is Forbidden (its existence is no
    secret worth a 404), a deleted one NotFound."""
    row = await webhook_store.find_endpoint(conn, endpoint_id, for_update=for_update)
    if row is None:
        raise NotFound("webhook endpoint", str(endpoint_id))
    if not caller.may_manage(row.tenant_id):
        raise Forbidden("a tenant token manages only its own endpoints")
    if row.deleted_at is not None:
        raise NotFound("webhook endpoint", str(endpoint_id))
    return row


async def _check_target_now(host: str, port: int, allow_private: bool) -> None:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_private)
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidField("url", f"{host} does not resolve") from None
    for info in infos:
        check_address(ipaddress.ip_address(info[4][0]), allow_private)
