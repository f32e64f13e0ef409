"""SQL for per-tenant alerts and their firings (migration 0016), and the usage forecast an alert
reads (the forecasting tables, migration 0011, named here by their columns only: infra does not
import forecasting/). Rows out; notifications/ turns them into records.

A firing is claimed by inserting its (alert, occurrence) row, unique: of two evaluators crossing
the same threshold at once, one inserts and emits, the other waits on the unique index, then finds
the row and does nothing. The caller emits the event in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, column, delete, select, table, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import alert_firings, alerts, tenants

_models = table("forecast_models", column("version"), column("kind"), column("created_at"))
_forecasts = table(
    "usage_forecasts", column("model_version"), column("tenant_id"), column("meter"), column("day"), column("quantity")
)


async def tenant_currency(conn: AsyncConnection, tenant_id: str) -> str | None:
    """The tenant's invoice currency, or None when no such tenant is registered."""
    return (await conn.execute(select(tenants.c.currency).where(tenants.c.tenant_id == tenant_id))).scalar()


async def insert_alert(
    conn: AsyncConnection, tenant_id: str, kind: str, meter: str | None, threshold: Decimal, currency: str | None
) -> Row[Any]:
    statement = (
        insert(alerts)
        .values(
            alert_id=uuid.uuid4(), tenant_id=tenant_id, kind=kind, meter=meter, threshold=threshold, currency=currency
        )
        .returning(alerts)
    )
    row: Row[Any] = (await conn.execute(statement)).one()
    return row


async def list_alerts(conn: AsyncConnection, tenant_id: str) -> list[Row[Any]]:
    query = select(alerts).where(alerts.c.tenant_id == tenant_id).order_by(alerts.c.created_at, alerts.c.alert_id)
    return list(await conn.execute(query))


async def delete_alert(conn: AsyncConnection, tenant_id: str, alert_id: uuid.UUID) -> bool:
    result = await conn.execute(
        delete(alerts).where(alerts.c.alert_id == alert_id, alerts.c.tenant_id == tenant_id).returning(alerts.c.alert_id)
    )
    return result.first() is not None


async def unfired(conn: AsyncConnection, occurrence: str) -> list[Row[Any]]:
    """Every alert with its tenant's currency, except those that fired for `occurrence` (the
    current period) already; alerts on credit grants (whose occurrences are the grants) always."""
    fired = select(alert_firings.c.alert_id).where(alert_firings.c.occurrence == occurrence)
    query = (
        select(alerts, tenants.c.currency.label("tenant_currency"))
        .join(tenants, tenants.c.tenant_id == alerts.c.tenant_id)
        .where((alerts.c.kind == "credits_expiring") | alerts.c.alert_id.not_in(fired))
        .order_by(alerts.c.tenant_id, alerts.c.alert_id)
    )
    return list(await conn.execute(query))


async def fired_occurrences(conn: AsyncConnection, alert_ids: Sequence[uuid.UUID]) -> set[tuple[uuid.UUID, str]]:
    rows = await conn.execute(
        select(alert_firings.c.alert_id, alert_firings.c.occurrence).where(alert_firings.c.alert_id.in_(list(alert_ids)))
    )
    return {(row.alert_id, row.occurrence) for row in rows}


async def claim_firing(conn: AsyncConnection, alert_id: uuid.UUID, occurrence: str) -> bool:
    """True when this transaction is the one that fires the alert for the occurrence."""
    inserted = await conn.execute(
        insert(alert_firings)
        .values(alert_id=alert_id, occurrence=occurrence)
        .on_conflict_do_nothing(index_elements=["alert_id", "occurrence"])
        .returning(alert_firings.c.alert_id)
    )
    return inserted.first() is not None


async def set_firing_event(conn: AsyncConnection, alert_id: uuid.UUID, occurrence: str, event_id: str) -> None:
    await conn.execute(
        update(alert_firings)
        .where(and_(alert_firings.c.alert_id == alert_id, alert_firings.c.occurrence == occurrence))
        .values(event_id=event_id)
    )


async def latest_usage_model(conn: AsyncConnection) -> str | None:
    query = (
        select(_models.c.version)
        .where(_models.c.kind == "usage")
        .order_by(_models.c.created_at.desc(), _models.c.version.desc())
        .limit(1)
    )
    return (await conn.execute(query)).scalar()


async def forecast_medians(
    conn: AsyncConnection, model_version: str, tenant_ids: Sequence[str], first: date, last: date
) -> dict[str, dict[date, dict[str, Decimal]]]:
    """tenant -> day -> meter -> the forecast's median quantity, for days in [first, last]."""
    rows = await conn.execute(
        select(_forecasts.c.tenant_id, _forecasts.c.day, _forecasts.c.meter, _forecasts.c.quantity).where(
            _forecasts.c.model_version == model_version,
            _forecasts.c.tenant_id.in_(list(tenant_ids)),
            _forecasts.c.day >= first,
            _forecasts.c.day <= last,
        )
    )
    found: dict[str, dict[date, dict[str, Decimal]]] = {tenant_id: {} for tenant_id in tenant_ids}
    for row in rows:
        found[row.tenant_id].setdefault(row.day, {})[row.meter] = Decimal(row.quantity)
    return found
