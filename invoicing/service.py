"""Invoicing use cases over PostgreSQL and the shard actors: rate a tenant's period from live
usage, and store its invoice (composition is pure: invoicing/composition.py). The HTTP routes and
the invoice-run tasks both call in here, so an invoice is made one way only."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.live_usage import ShardDirectory, live_rows
from infra import fx_store, invoice_store, pricing_store
from infra.pricing_cache import PricingCache
from infra.pricing_store import TenantGenerations
from infra.schema import tenants
from infra.settings import Settings
from invoicing.composition import InvoiceLine, compose_invoice
from invoicing.pdf import render_invoice_pdf, store_pdf
from pricing.fx import ECB_SOURCE, FxRate
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

    async def pdf(self, invoice_id: uuid.UUID) -> tuple[object, bytes]:
        """(invoice row, PDF bytes). A finalized invoice's PDF is rendered once and kept under the
        data dir with its SHA-256; a draft's is rendered each time, watermarked, and not kept."""
        async with self.engine.connect() as conn:
            row = await invoice_store.find(conn, invoice_id)
            if row is None:
                raise invoice_store.InvoiceNotFound(str(invoice_id))
            kept = await invoice_store.stored_pdf(conn, invoice_id)
            buyer = (await conn.execute(select(tenants).where(tenants.c.tenant_id == row.tenant_id))).one()
        if kept is not None:
            pdf = Path(kept.path).read_bytes()
            if hashlib.sha256(pdf).hexdigest() == kept.sha256:
                return row, pdf
        pdf = await asyncio.to_thread(
            render_invoice_pdf, invoice_document(row), buyer._asdict(), self.issuer, buyer.locale
        )
        if row.status != "draft":
            path, sha256 = await asyncio.to_thread(store_pdf, self.settings.data_dir, invoice_id, pdf)
            async with self.engine.begin() as conn:
                await invoice_store.record_pdf(conn, invoice_id, sha256, str(path))
        return row, pdf

    @property
    def issuer(self) -> dict[str, object]:
        return {"name": f"{self.settings.issuer} Cloud Platform", "country": self.settings.seller_country}

    async def _fx(self, price_currency: Currency, billing: Currency, on) -> FxRate | None:
        if price_currency == billing:
            return None
        async with self.engine.connect() as conn:
            table = await fx_store.load_table(conn, self.settings.fx_source or ECB_SOURCE)
        return table.rate(price_currency, billing, on)  # NoRateInForce when none is loaded


def invoice_document(row) -> dict[str, object]:
    """The stored invoice as the renderer reads it: its composed document with id and number."""
    return {
        **row.document,
        "invoice_id": str(row.invoice_id),
        "number": row.number,
        "status": row.status,
        "tenant_id": row.tenant_id,
        "period_start": row.period_start.isoformat(),
        "period_end": row.period_end.isoformat(),
        "issued_at": None if row.finalized_at is None else row.finalized_at.isoformat(),
    }


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
