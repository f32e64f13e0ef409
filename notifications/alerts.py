"""Alerts on a tenant's usage, spend, spend forecast and credits: create, list, delete.
When they fire is notifications/alert_rules.py; evaluating them, notifications/alert_evaluator.py."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from infra import alert_store
from notifications.alert_rules import parse_alert
from notifications.context import NotificationContext
from notifications.errors import NotFound
from notifications.records import Alert


def alert_record(row: Any) -> Alert:
    return Alert(row.alert_id, row.tenant_id, row.kind, row.meter, row.threshold, row.currency, row.created_at)


async def create_alert(ctx: NotificationContext, tenant_id: str, request: Mapping[str, Any]) -> Alert:
    async with ctx.engine.begin() as conn:
        currency = await alert_store.tenant_currency(conn, tenant_id)
        if currency is None:
            raise NotFound("tenant", tenant_id)
        spec = parse_alert(request, currency)
        row = await alert_store.insert_alert(conn, tenant_id, spec.kind.value, spec.meter, spec.threshold, spec.currency)
    return alert_record(row)


async def list_alerts(ctx: NotificationContext, tenant_id: str) -> tuple[Alert, ...]:
    async with ctx.engine.connect() as conn:
        if await alert_store.tenant_currency(conn, tenant_id) is None:
            raise NotFound("tenant", tenant_id)
        return tuple(alert_record(row) for row in await alert_store.list_alerts(conn, tenant_id))


async def delete_alert(ctx: NotificationContext, tenant_id: str, alert_id: uuid.UUID) -> None:
    async with ctx.engine.begin() as conn:
        if not await alert_store.delete_alert(conn, tenant_id, alert_id):
            raise NotFound("alert", str(alert_id))
