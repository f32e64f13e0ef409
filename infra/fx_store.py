"""SQL for FX reference rates: importing ECB-layout tables and reading them back."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import fx_rates
from pricing.fx import ECB_SOURCE, RateTable
from pricing.money import Currency


async def import_table(conn: AsyncConnection, table: RateTable) -> int:
    """Store every rate of the table (a re-import of the same day replaces its figures)."""
    rows = [
        {"source": table.source, "rate_date": day, "currency": currency.code, "per_eur": per_eur}
        for day, currency, per_eur in table.items()
    ]
    if rows:
        statement = insert(fx_rates).values(rows)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["source", "rate_date", "currency"],
                set_={"per_eur": statement.excluded.per_eur},
            )
        )
    return len(rows)


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
