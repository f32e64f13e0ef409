"""Invoicing use cases over PostgreSQL and the shard actors: rate a tenant's period from live
usage, and store its invoice (composition is pure: invoicing/composition.py). The HTTP routes and
the invoice-run tasks both call in here, so an invoice is made one way only."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.live_usage import ShardDirectory, live_rows
from infra import fx_store, invoice_store, pricing_store
from infra.pricing_cache import PricingCache
from infra.pricing_store import TenantGenerations
from infra.schema import tenants
from infra.settings import Settings
from invoicing.composition import InvoiceLine, compose_invoice, invoice_lines
from invoicing.late_usage import (
    BilledPeriod,
    late_usage_line,
    totals_from_json,
    totals_to_json,
    usage_totals,
)
from invoicing.pdf import render_invoice_pdf, store_pdf
from pricing.fx import ECB_SOURCE, FxRate
from pricing.meters import METERS
from pricing.money import Currency, Money
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
    usage: dict[str, Decimal]  # meter -> the period's total the rating was made from


@dataclass(frozen=True)
class LateUsage:
    billed: BilledPeriod
    usage_now: dict[str, Decimal]
    line: InvoiceLine

    def row(self) -> dict[str, object]:
        """The invoice_adjustments row that records this line once its invoice is finalized."""
        charged = self.billed.charged + self.line.amount
        return {
            "source_invoice_id": uuid.UUID(self.billed.invoice_id),
            "usage": totals_to_json(self.usage_now),
            "charged": charged.major_units(),
            "amount": self.line.amount.major_units(),
        }


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
        rating = rate_period(usage, settings, catalog, period)
        return TenantRating(buyer, generations, settings, rating, usage_totals(usage))

    async def invoice(
        self, tenant_id: str, period: Period, actor: str, *, finalize: bool = False
    ) -> tuple[object, bool]:
        """The tenant's invoice for the period: (row, created). Idempotent: a finalized one is
        returned untouched; a draft (still in its grace period) is recomposed from the usage
        there is now, keeping its id, and numbered and frozen when `finalize`. Credits are drawn
        and late usage of earlier periods is recorded only when the invoice is finalized."""
        async with self.engine.connect() as conn:
            existing = await invoice_store.find_for_period(conn, tenant_id, period.start, period.end)
        if existing is not None and existing.status != "draft":
            return existing, False
        rated = await self.rate(tenant_id, period)
        currency = Currency.of(rated.buyer.currency)
        tax_date = last_day(period)
        fx = await self._fx(rated.rating.currency, currency, tax_date)
        async with self.engine.begin() as conn:
            await pricing_store.lock_tenant(conn, tenant_id)  # one ledger writer at a time
            current = await invoice_store.find_for_period(
                conn, tenant_id, period.start, period.end, for_update=True
            )
            if current is not None and current.status != "draft":
                return current, False
            invoice_id = uuid.uuid4() if current is None else current.invoice_id
            late = await self._late_usage(conn, tenant_id, period.start, currency)
            ledger = await pricing_store.load_ledger(conn, tenant_id, rated.buyer.currency)
            draft, spent = compose_invoice(
                rated.rating,
                billing_currency=currency,
                fx=fx,
                ledger=ledger,
                at=datetime.now(UTC),
                reference=str(invoice_id),
                seller_country=self.settings.seller_country,
                buyer_country=rated.buyer.country,
                buyer_vat_id=rated.buyer.vat_id,
                buyer_region=rated.buyer.region,
                tax_date=tax_date,
                usage=rated.usage,
                adjustments=[adjustment.line for adjustment in late],
            )
            await self._save_draft(conn, invoice_id, current is None, tenant_id, period, draft)
            if finalize:
                for entry in spent.entries[len(ledger.entries) :]:
                    ledger = await pricing_store.append_ledger_entry(conn, ledger, entry, actor)
                await invoice_store.record_adjustments(conn, invoice_id, [a.row() for a in late])
                await invoice_store.finalize(conn, invoice_id)
            row = await invoice_store.find(conn, invoice_id)
        return row, current is None

    async def finalize(self, invoice_id: uuid.UUID, actor: str) -> object:
        """Number and freeze a draft, recomposed from the usage there is now (idempotent)."""
        async with self.engine.connect() as conn:
            row = await invoice_store.find(conn, invoice_id)
        if row is None:
            raise invoice_store.InvoiceNotFound(str(invoice_id))
        if row.status != "draft":
            return row
        period = Period(row.period_start, row.period_end)
        finalized, _ = await self.invoice(row.tenant_id, period, actor, finalize=True)
        return finalized

    async def _save_draft(
        self, conn, invoice_id: uuid.UUID, new: bool, tenant_id: str, period: Period, draft
    ) -> None:
        values = {
            "currency": draft.currency.code,
            "subtotal": draft.subtotal.major_units(),
            "tax": draft.tax.amount.major_units(),
            "document": draft.to_json(),
            "lines": [_line_row(line) for line in draft.lines],
        }
        if new:
            await invoice_store.insert_draft(
                conn,
                invoice_id=invoice_id,
                tenant_id=tenant_id,
                period_start=period.start,
                period_end=period.end,
                issuer=self.settings.issuer,
                **values,
            )
        else:
            await invoice_store.replace_draft(conn, invoice_id, **values)

    async def _late_usage(
        self, conn, tenant_id: str, before: datetime, currency: Currency
    ) -> list[LateUsage]:
        """A late-usage line for each earlier finalized period whose usage has changed since it was
        billed. Runs under the tenant's lock, so two finalizations never charge the same change."""
        late = []
        for source in await invoice_store.adjustable_invoices(
            conn, tenant_id, before, self.settings.late_window_s
        ):
            billed = _billed_period(source)
            if billed is None or billed.charged.currency != currency:
                continue  # billed before usage was kept on invoices, or in another currency since
            rerated = await self.rate(tenant_id, billed.period)
            if rerated.usage == billed.usage:
                continue
            fx = await self._fx(rerated.rating.currency, currency, last_day(billed.period))
            lines_now = invoice_lines(rerated.rating, fx)
            late.append(LateUsage(billed, rerated.usage, late_usage_line(billed, rerated.usage, lines_now)))
        return late

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


def last_day(period: Period) -> date:
    """The day whose tax rates and exchange rate an invoice for `period` uses."""
    return (period.end - timedelta(microseconds=1)).date()


def _billed_period(row) -> BilledPeriod | None:
    """What has been charged for a finalized invoice's period (its own lines, then adjustments)."""
    document = row.document
    if "usage" not in document:
        return None
    currency = Currency.of(row.currency)
    if row.adjusted_usage is not None:
        usage, charged = totals_from_json(row.adjusted_usage), Decimal(row.adjusted_charged)
    else:
        usage, charged = totals_from_json(document["usage"]), Decimal(document["subtotal_before_credits"])
    return BilledPeriod(
        str(row.invoice_id),
        row.number,
        Period(row.period_start, row.period_end),
        usage,
        Money.from_major(charged, currency),
    )


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
