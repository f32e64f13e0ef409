"""Reads for the models, aggregated in PostgreSQL with parameterised queries: daily usage as
arrays, tenants, failed payments and credit balances per day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlalchemy import ColumnElement, Float, Integer, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra.database import create_engine
from infra.schema import credit_entries, payments, tenants, usage_hourly
from infra.settings import Settings
from pricing.meters import METERS

SECONDS_PER_DAY = 86_400


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def engine(settings: Settings) -> AsyncEngine:
    """A one-connection engine on the settings' database (resolved: `infra.embedded.resolve`)."""
    if settings.database_url is None:
        raise ValueError("no database URL: resolve the settings first (infra.embedded.resolve)")
    return create_engine(settings.database_url, pool_size=1)


def day_index(column: ColumnElement[datetime], origin: date) -> ColumnElement[int]:
    """Whole days from `origin` to a timestamptz column, whatever the session's time zone."""
    seconds = func.extract("epoch", column) - func.extract("epoch", literal(midnight(origin)))
    return cast(func.floor(seconds / SECONDS_PER_DAY), Integer)


async def tenant_ids(conn: AsyncConnection, prefix: str | None = None) -> list[str]:
    query = select(tenants.c.tenant_id).order_by(tenants.c.tenant_id)
    if prefix:
        query = query.where(tenants.c.tenant_id.startswith(prefix, autoescape=True))
    return list((await conn.execute(query)).scalars())


async def daily_usage(conn: AsyncConnection, ids: list[str], first: date, days: int) -> np.ndarray:
    """len(ids) x days x meters: each tenant's usage per UTC day from `first`, summed in SQL."""
    day = day_index(usage_hourly.c.hour_start, first).label("day")
    query = (
        select(
            usage_hourly.c.tenant_id,
            day,
            *(cast(func.sum(usage_hourly.c[m.value]), Float).label(m.value) for m in METERS),
        )
        .where(
            usage_hourly.c.tenant_id.in_(ids),
            usage_hourly.c.hour_start >= midnight(first),
            usage_hourly.c.hour_start < midnight(first + timedelta(days=days)),
        )
        .group_by(usage_hourly.c.tenant_id, day)
    )
    position = {tenant_id: i for i, tenant_id in enumerate(ids)}
    result = np.zeros((len(ids), days, len(METERS)))
    for row in await conn.execute(query):
        result[position[row.tenant_id], row.day] = [row[2 + i] for i in range(len(METERS))]
    return result


@dataclass(frozen=True)
class TenantRecords:
    """What the churn features need besides usage, per tenant in `ids` order, per day from `first`."""

    ids: list[str]
    tiers: list[str]
    currencies: list[str]
    created_day: np.ndarray  # day index the tenant was created (relative to `first`)
    failed_payments: np.ndarray  # tenants x days: failed payments created that day
    credit_minor: np.ndarray  # tenants x days: credit granted minus debited that day, minor units


async def tenant_records(conn: AsyncConnection, ids: list[str], first: date, days: int) -> TenantRecords:
    position = {tenant_id: i for i, tenant_id in enumerate(ids)}
    rows = (
        await conn.execute(
            select(tenants.c.tenant_id, tenants.c.tier, tenants.c.currency, tenants.c.created_at).where(
                tenants.c.tenant_id.in_(ids)
            )
        )
    ).all()
    by_id = {row.tenant_id: row for row in rows}
    created = np.array([(by_id[t].created_at - midnight(first)).days for t in ids])
    failed = np.zeros((len(ids), days))
    day = day_index(payments.c.created_at, first).label("day")
    failures = (
        select(payments.c.tenant_id, day, func.count().label("n"))
        .where(payments.c.tenant_id.in_(ids), payments.c.status == "failed")
        .group_by(payments.c.tenant_id, day)
    )
    for row in await conn.execute(failures):
        failed[position[row.tenant_id], np.clip(row.day, 0, days - 1)] += row.n
    credit = np.zeros((len(ids), days))
    day = day_index(credit_entries.c.at, first).label("day")
    signed = case(
        (credit_entries.c.entry_type == "grant", credit_entries.c.amount_minor),
        else_=-credit_entries.c.amount_minor,
    )
    ledger = (
        select(credit_entries.c.tenant_id, day, func.sum(signed).label("amount"))
        .where(credit_entries.c.tenant_id.in_(ids))
        .group_by(credit_entries.c.tenant_id, day)
    )
    for row in await conn.execute(ledger):
        credit[position[row.tenant_id], np.clip(row.day, 0, days - 1)] += float(Decimal(row.amount))
    return TenantRecords(
        ids=ids,
        tiers=[by_id[t].tier for t in ids],
        currencies=[by_id[t].currency for t in ids],
        created_day=created,
        failed_payments=failed,
        credit_minor=credit,
    )
