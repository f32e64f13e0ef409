"""Reference rates for reporting, from fx_rates: units of a currency per EUR on a day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.schema import fx_rates
from infra.settings import Settings
from pricing.fx import ECB_SOURCE


def source_of(settings: Settings) -> str:
    return settings.fx_source or ECB_SOURCE


async def rates_on(conn: AsyncConnection, source: str, day: date) -> dict[str, Decimal]:
    """Each currency's latest rate on or before `day` (EUR is 1 by definition)."""
    query = (
        select(fx_rates.c.currency, fx_rates.c.per_eur)
        .where(fx_rates.c.source == source, fx_rates.c.rate_date <= day)
        .order_by(fx_rates.c.currency, fx_rates.c.rate_date.desc())
        .distinct(fx_rates.c.currency)
    )
    rates = {currency.lower(): per_eur for currency, per_eur in await conn.execute(query)}
    rates["eur"] = Decimal(1)
    return rates


class MissingRate(LookupError):
    """No rate of that currency on or before the day in the chosen source."""
