"""SQL for FX reference rates: importing ECB-layout tables and reading them back."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra import audit_store
from infra.schema import fx_rates
from pricing.fx import ECB_SOURCE, RateTable
from pricing.money import Currency

MAX_REPLACED_SHOWN = 100  # figures a re-import replaced, kept on its audit entry


class _RateRow(TypedDict):
    """One row of fx_rates as imported."""

    source: str
    rate_date: date
    currency: str
    per_eur: Decimal


async def import_table(conn: AsyncConnection, table: RateTable, *, actor: str) -> int:
    """Store every rate of the table (a re-import of the same day replaces its figures); audited
    with the figures it replaced, since invoices convert at these rates."""
    rows: list[_RateRow] = [
        {"source": table.source, "rate_date": day, "currency": currency.code, "per_eur": per_eur}
        for day, currency, per_eur in table.items()
    ]
    if rows:
        await _audit_import(conn, table.source, rows, actor)
        statement = insert(fx_rates).values(rows)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["source", "rate_date", "currency"],
                set_={"per_eur": statement.excluded.per_eur},
            )
        )
    return len(rows)


async def _audit_import(conn: AsyncConnection, source: str, rows: list[_RateRow], actor: str) -> None:
    first, last = min(r["rate_date"] for r in rows), max(r["rate_date"] for r in rows)
    stored = {
        (day, code): per_eur
        for day, code, per_eur in await conn.execute(
            select(fx_rates.c.rate_date, fx_rates.c.currency, fx_rates.c.per_eur).where(
                fx_rates.c.source == source, fx_rates.c.rate_date.between(first, last)
            )
        )
    }
    replaced = [
        (f"{r['rate_date']}/{r['currency']}", stored[key], r["per_eur"])
        for r in rows
        if (key := (r["rate_date"], r["currency"])) in stored and stored[key] != r["per_eur"]
    ]
    shown = replaced[:MAX_REPLACED_SHOWN]
    span = {"source": source, "from": first, "to": last}
    await audit_store.record(
        conn,
        actor,
        "fx.rates_loaded",
        "fx_rates",
        source,
        None,
        {**span, "rates": len(stored), "per_eur": {name: old for name, old, _ in shown}},
        {
            **span,
            "rates": len(rows),
            "per_eur": {name: new for name, _, new in shown},
            "replaced": len(replaced),
        },
    )


async def load_table(conn: AsyncConnection, source: str = ECB_SOURCE) -> RateTable:
    result = await conn.execute(
        select(fx_rates.c.rate_date, fx_rates.c.currency, fx_rates.c.per_eur).where(
            fx_rates.c.source == source
        )
    )
    rates: dict[date, dict[Currency, Decimal]] = defaultdict(dict)
    for day, code, per_eur in result:
        rates[day][Currency.of(code)] = per_eur
    return RateTable(rates, source)
