"""Invoicing use cases over PostgreSQL and the shard actors: rate a tenant's period from live
usage, and store its invoice (composition is pure: invoicing/composition.py). The HTTP routes and
the invoice-run tasks both call in here, so an invoice is made one way only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.live_usage import ShardDirectory, live_rows
from infra import fx_store, invoice_store, pricing_store
from infra.pricing_cache import PricingCache
from infra.pricing_store import TenantGenerations
from infra.schema import tenants
from infra.settings import Settings
from invoicing.composition import InvoiceLine, compose_invoice
from pricing.fx import FxRate
from pricing.meters import METERS
from pricing.money import Currency
from pricing.periods import Period
from pricing.rating import Rating, rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage


class TenantNotFound(LookupError):
    """No tenant with that id."""


@dataclass(frozen=True)
class TenantRating:
    buyer: object  # the tenants row
    generations: TenantGenerations
    settings: TenantPricing
    rating: Rating


@dataclass
class Invoicer:
    engine: AsyncEngine
    cache: PricingCache
    directory: ShardDirectory
    settings: Settings

    async def rate(self, tenant_id: str, period: Period) -> TenantRating:
        """The tenant's charges for the period from live usage. Raises TenantNotFound, the pricing
        errors (InvalidSettings, NoPriceInForce) and UsageNotSettled."""
        async with self.engine.connect() as conn:
            buyer = (await conn.execute(select(tenants).where(tenants.c.tenant_id == tenant_id))).first()
            generations = await pricing_store.tenant_generations(conn, tenant_id)
        if buyer is None or generations is None:
            raise TenantNotFound(tenant_id)
        catalog = await self.cache.catalog(generations.catalog)
        settings = await self.cache.settings(generations)
        rows = await live_rows(
            self.engine, self.directory, self.settings, [tenant_id], period.start, period.end
        )
        usage = [
            HourlyUsage(datetime.fromtimestamp(hour, UTC), **{m.value: q for m, q in zip(METERS, quantities)})
            for _, hour, quantities in rows
        ]
        return TenantRating(buyer, generations, settings, rate_period(usage, settings, catalog, period))

    async def invoice(self, tenant_id: str, period: Period, actor: str) -> tuple[object, bool]:
        """The tenant's invoice for the period: (row, created). Idempotent: an existing one is
        returned untouched, and a concurrent twin loses on the one-per-period constraint."""
        async with self.engine.connect() as conn:
            existing = await invoice_store.find_for_period(conn, tenant_id, period.start, period.end)
        if existing is not None:
            return existing, False
        rated = await self.rate(tenant_id, period)
        buyer = rated.buyer
        currency = Currency.of(buyer.currency)
        last_day = (period.end - timedelta(microseconds=1)).date()
        fx = await self._fx(rated.rating.currency, currency, last_day)
        invoice_id = uuid.uuid4()
        async with self.engine.begin() as conn:
            await pricing_store.lock_tenant(conn, tenant_id)  # one ledger writer at a time
            ledger = await pricing_store.load_ledger(conn, tenant_id, buyer.currency)
            draft, spent = compose_invoice(
                rated.rating,
                billing_currency=currency,
                fx=fx,
                ledger=ledger,
                at=datetime.now(UTC),
                reference=str(invoice_id),
                seller_country=self.settings.seller_country,
                buyer_country=buyer.country,
                buyer_vat_id=buyer.vat_id,
                buyer_region=buyer.region,
                tax_date=last_day,
            )
            stored_id, created = await invoice_store.insert_draft(
                conn,
                invoice_id=invoice_id,
                tenant_id=tenant_id,
                period_start=period.start,
                period_end=period.end,
                currency=draft.currency.code,
                subtotal=draft.subtotal.major_units(),
                tax=draft.tax.amount.major_units(),
                issuer=self.settings.issuer,
                document=draft.to_json(),
                lines=[_line_row(line) for line in draft.lines],
            )
            if created:
                for entry in spent.entries[len(ledger.entries) :]:
                    ledger = await pricing_store.append_ledger_entry(conn, ledger, entry, actor)
            row = await invoice_store.find(conn, stored_id)
        return row, created

    async def _fx(self, price_currency: Currency, billing: Currency, on) -> FxRate | None:
        if price_currency == billing:
            return None
        async with self.engine.connect() as conn:
            table = await fx_store.load_table(conn)
        return table.rate(price_currency, billing, on)  # NoRateInForce when none is loaded


def _line_row(line: InvoiceLine) -> dict[str, object]:
    return {
        "kind": line.kind.value,
        "meter": None if line.meter is None else line.meter.value,
        "description": line.description,
        "quantity": line.quantity,
        "unit": line.unit,
        "unit_price": line.unit_price,
        "amount": line.amount.major_units(),
    }
