"""Invoicing use cases over PostgreSQL and the shard actors: rate a tenant's period from live
usage, and store its invoice (composition is pure: invoicing/composition.py). The HTTP routes and
the invoice-run tasks both call in here, so an invoice is made one way only."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from actors.live_usage import ShardDirectory, UsageNotSettled, live_rows
from infra import credit_note_store, fx_store, invoice_store, pricing_store, tenant_store
from infra.field_encryption import FieldCipher
from infra.keyring_store import field_cipher
from infra.pricing_cache import PricingCache
from infra.pricing_store import TenantGenerations
from infra.tenant_store import Tenant
from invoicing.composition import InvoiceDraft, InvoiceLine, compose_invoice, invoice_lines
from invoicing.config import InvoicingConfig
from invoicing.credits import record_entries
from invoicing.document import InvoiceDocument, PaymentMethod, build_credit_note, build_invoice
from invoicing.einvoice import cii_xml, ubl_xml
from invoicing.errors import DraftInvoice, TenantNotFound
from invoicing.i18n import Localizer
from invoicing.late_usage import (
    BilledPeriod,
    late_usage_line,
    totals_from_json,
    totals_to_json,
    usage_totals,
)
from invoicing.lifecycle import InvoiceStatus
from invoicing.pdf import pdf_filename, render_pdf, store_pdf
from invoicing.records import CreditNote, CreditNoteFile, Invoice, InvoiceFile
from invoicing.references import wire_reference
from invoicing.seller import Seller, load_seller
from notifications import emit
from pricing.credits import CreditLedger
from pricing.errors import PricingError
from pricing.fx import ECB_SOURCE, FxRate, RateTable
from pricing.money import Currency, Money
from pricing.periods import Period
from pricing.rating import Rating, rate_period
from pricing.tax_rates import load_tax_rates
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage

# What one tenant's failure may be; anything else is a bug, and fails the whole call.
TENANT_ERRORS = (TenantNotFound, UsageNotSettled, PricingError)
# Raises when the caller may not read the tenant's invoices (the routes' tenant check), called
# once the invoice is found and before any rendering work.
TenantCheck = Callable[[str], None]


def anyone(tenant_id: str) -> None:
    """The check of callers that may read every tenant's invoices (the invoice run): none."""


@dataclass(frozen=True)
class TenantRating:
    buyer: Tenant
    generations: TenantGenerations
    settings: TenantPricing
    rating: Rating
    usage: dict[str, Decimal]  # meter -> the period's total the rating was made from
    hours: tuple[HourlyUsage, ...]  # what it was rated from, to rate again under other terms


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
    config: InvoicingConfig

    @cached_property
    def cipher(self) -> FieldCipher:
        """Decrypts the buyers' VAT ids (loaded on first use, also inside Ray tasks)."""
        return field_cipher(self.config)

    async def rate(self, tenant_id: str, period: Period) -> TenantRating:
        """The tenant's charges for the period from live usage. Raises TenantNotFound, the pricing
        errors (InvalidSettings, NoPriceInForce) and UsageNotSettled."""
        return _or_raise((await self.rate_many([tenant_id], period))[tenant_id])

    async def rate_many(self, tenant_ids: list[str], period: Period) -> dict[str, TenantRating | Exception]:
        """`rate` for many tenants with one read of each kind: tenants, generations, live usage.
        A tenant's own failure is its value; UsageNotSettled fails them all."""
        async with self.engine.connect() as conn:
            buyers = await tenant_store.find_tenants(conn, self.cipher, tenant_ids)
            generations = await pricing_store.tenants_generations(conn, tenant_ids)
        known = [t for t in tenant_ids if t in buyers and t in generations]
        hours: dict[str, list[HourlyUsage]] = {t: [] for t in known}
        try:
            rows = await live_rows(self.engine, self.directory, known, period.start, period.end)
        except UsageNotSettled as error:
            return {tenant_id: error for tenant_id in tenant_ids}
        if known:
            for tenant_id, hour, quantities in rows:
                hours[tenant_id].append(HourlyUsage.stored(datetime.fromtimestamp(hour, UTC), quantities))
        rated: dict[str, TenantRating | Exception] = {}
        for tenant_id in tenant_ids:
            if tenant_id not in hours:
                rated[tenant_id] = TenantNotFound(tenant_id)
                continue
            try:
                catalog = await self.cache.catalog(generations[tenant_id].catalog)
                settings = await self.cache.settings(generations[tenant_id])
                rating = rate_period(hours[tenant_id], settings, catalog, period)
            except PricingError as error:
                rated[tenant_id] = error
                continue
            rated[tenant_id] = TenantRating(
                buyers[tenant_id],
                generations[tenant_id],
                settings,
                rating,
                usage_totals(hours[tenant_id]),
                tuple(hours[tenant_id]),
            )
        return rated

    async def invoice(
        self, tenant_id: str, period: Period, actor: str, *, finalize: bool = False
    ) -> tuple[Invoice, bool]:
        """The tenant's invoice for the period: (invoice, created). See `invoice_many`."""
        outcome = (await self.invoice_many([tenant_id], period, actor, finalize=finalize))[tenant_id]
        return _or_raise(outcome.invoice), outcome.created

    async def invoice_many(
        self, tenant_ids: list[str], period: Period, actor: str, *, finalize: bool = False
    ) -> dict[str, Outcome]:
        """Each tenant's invoice for the period, made in one transaction for all of them.

        Idempotent: a finalized invoice is returned untouched; a draft (still in its grace period)
        is recomposed from the usage there is now, keeping its id, and numbered and frozen when
        `finalize`. Credits are drawn and late usage of earlier periods is recorded only when an
        invoice is finalized. A tenant that cannot be invoiced gets its error as its outcome."""
        async with self.engine.connect() as conn:
            existing = await invoice_store.find_many_for_period(conn, tenant_ids, period.start, period.end)
        outcomes = {
            t: Outcome(Invoice.of(row), False) for t, row in existing.items() if row.status != "draft"
        }
        rated = await self.rate_many([t for t in tenant_ids if t not in outcomes], period)
        outcomes |= {t: Outcome(r, False) for t, r in rated.items() if isinstance(r, Exception)}
        ratings = {t: r for t, r in rated.items() if isinstance(r, TenantRating)}
        ready = sorted(ratings)
        if not ready:
            return outcomes
        fx = _RateCache(self)
        async with self.engine.begin() as conn:
            await pricing_store.lock_tenants(conn, ready)  # one ledger writer per tenant at a time
            current = await invoice_store.find_many_for_period(
                conn, ready, period.start, period.end, for_update=True
            )
            ledgers = await pricing_store.load_ledgers(conn, {t: ratings[t].buyer.currency for t in ready})
            adjustable = await invoice_store.adjustable_invoices(
                conn, ready, period.start, self.config.late_window_s
            )
            composed: dict[str, _Composed] = {}
            for tenant_id in ready:
                row: Row[Any] | None = current.get(tenant_id)
                if row is not None and row.status != "draft":
                    outcomes[tenant_id] = Outcome(Invoice.of(row), False)
                    continue
                try:
                    composed[tenant_id] = await self._compose(
                        ratings[tenant_id], row, period, ledgers[tenant_id], adjustable.get(tenant_id, []), fx
                    )
                except TENANT_ERRORS as error:
                    outcomes[tenant_id] = Outcome(error, False)
            await self._store(conn, composed, period, actor, finalize)
            rows = await invoice_store.find_many(conn, [c.invoice_id for c in composed.values()])
        return outcomes | {t: Outcome(Invoice.of(rows[c.invoice_id]), c.new) for t, c in composed.items()}

    async def _compose(
        self,
        rated: TenantRating,
        row: Row[Any] | None,
        period: Period,
        ledger: CreditLedger,
        adjustable: list[Row[Any]],
        fx: _RateCache,
    ) -> _Composed:
        tenant_id, currency = rated.buyer.tenant_id, Currency.of(rated.buyer.currency)
        invoice_id = uuid.uuid4() if row is None else row.invoice_id
        late = await self._late_usage(tenant_id, adjustable, currency, fx)
        draft, spent = compose_invoice(
            rated.rating,
            billing_currency=currency,
            fx=await fx.rate(rated.rating.currency, currency, last_day(period)),
            ledger=ledger,
            at=datetime.now(UTC),
            reference=str(invoice_id),
            seller_country=self.config.seller_country,
            buyer_country=rated.buyer.country,
            buyer_vat_id=rated.buyer.vat_id,
            buyer_region=rated.buyer.region,
            tax_date=last_day(period),
            usage=rated.usage,
            adjustments=[adjustment.line for adjustment in late],
            tax_fx=await self._tax_fx(currency, fx, last_day(period)),
        )
        return _Composed(invoice_id, row is None, draft, ledger, spent, late, rated.settings)

    async def _store(
        self,
        conn: AsyncConnection,
        composed: dict[str, _Composed],
        period: Period,
        actor: str,
        finalize: bool,
    ) -> None:
        """Write the composed invoices: new drafts in one statement, recomposed ones in place;
        when finalizing, their credit debits and late-usage records, then their numbers."""
        await invoice_store.insert_drafts(
            conn,
            [
                {
                    "invoice_id": c.invoice_id,
                    "tenant_id": tenant_id,
                    "period_start": period.start,
                    "period_end": period.end,
                    "issuer": self.config.issuer,
                    **_draft_values(c),
                }
                for tenant_id, c in composed.items()
                if c.new
            ],
        )
        for c in composed.values():
            if not c.new:
                await invoice_store.replace_draft(conn, c.invoice_id, **_draft_values(c))
        if not finalize:
            return
        for c in composed.values():
            await record_entries(conn, c.ledger, c.spent.entries[len(c.ledger.entries) :], actor)
            await invoice_store.record_adjustments(conn, c.invoice_id, [a.row() for a in c.late])
        await invoice_store.finalize_many(conn, [c.invoice_id for c in composed.values()], actor=actor)
        await emit.invoices_finalized(conn, [c.invoice_id for c in composed.values()])  # webhooks, same commit

    async def finalize(self, invoice_id: uuid.UUID, actor: str) -> Invoice:
        """Number and freeze a draft, recomposed from the usage there is now (idempotent).
        Raises InvoiceNotFound, and what `invoice` raises."""
        async with self.engine.connect() as conn:
            row: Row[Any] | None = await invoice_store.find(conn, invoice_id)
        if row is None:
            raise invoice_store.InvoiceNotFound(str(invoice_id))
        invoice = Invoice.of(row)
        if invoice.status != InvoiceStatus.DRAFT:
            return invoice
        finalized, _ = await self.invoice(invoice.tenant_id, invoice.period, actor, finalize=True)
        return finalized

    async def _tax_fx(self, currency: Currency, fx: _RateCache, on: date) -> FxRate | None:
        """The rate the VAT is also stated in EUR at, when an EU seller invoices in another
        currency (art. 230 Directive 2006/112/EC); None when no rate is loaded for it, so the
        invoice still goes out (it then states the VAT in its own currency only)."""
        if currency.code == "eur" or self.config.seller_country not in load_tax_rates().eu_vat:
            return None
        try:
            return await fx.rate(currency, Currency("eur"), on)
        except PricingError:
            return None

    async def _late_usage(
        self, tenant_id: str, adjustable: list[Row[Any]], currency: Currency, fx: _RateCache
    ) -> list[LateUsage]:
        """A late-usage line for each earlier finalized period whose usage has changed since it was
        billed. Runs under the tenant's lock, so two finalizations never charge the same change."""
        late: list[LateUsage] = []
        for source in adjustable:
            billed = _billed_period(source)
            if billed is None or billed.charged.currency != currency:
                continue  # billed before usage was kept on invoices, or in another currency since
            rerated = await self.rate(tenant_id, billed.period)
            if rerated.usage == billed.usage:
                continue
            rating = rerated.rating
            if "pricing" in source.document:  # the terms the period was billed under, not today's
                catalog = await self.cache.catalog(rerated.generations.catalog)
                terms = TenantPricing.from_json(source.document["pricing"])
                rating = rate_period(list(rerated.hours), terms, catalog, billed.period)
            rate = await fx.rate(rating.currency, currency, last_day(billed.period))
            lines_now = invoice_lines(rating, rate)
            late.append(LateUsage(billed, rerated.usage, late_usage_line(billed, rerated.usage, lines_now)))
        return late

    async def _buyer(self, conn: AsyncConnection, tenant_id: str) -> Tenant:
        """An invoice's buyer (invoices.tenant_id references tenants: there is one)."""
        buyer = await tenant_store.find_tenant(conn, self.cipher, tenant_id)
        if buyer is None:
            raise TenantNotFound(tenant_id)
        return buyer

    @property
    def seller(self) -> Seller:
        """The seller the invoices name (invoicing/seller.json or the file BILLING_SELLER_FILE)."""
        return load_seller(self.config.seller_file)

    async def document(
        self, invoice_id: uuid.UUID, check_tenant: TenantCheck = anyone
    ) -> tuple[Invoice, InvoiceDocument, str]:
        """(the invoice, its document as paid or not, the buyer's locale). Raises
        InvoiceNotFound, and what `check_tenant` raises."""
        async with self.engine.connect() as conn:
            row: Row[Any] | None = await invoice_store.find(conn, invoice_id)
            if row is None:
                raise invoice_store.InvoiceNotFound(str(invoice_id))
            invoice = Invoice.of(row)
            check_tenant(invoice.tenant_id)
            buyer = await self._buyer(conn, invoice.tenant_id)
            paying = await invoice_store.payment_context(conn, invoice_id, invoice.tenant_id)
        return invoice, invoice_view(invoice, buyer.as_dict(), self.seller, paying), buyer.locale

    async def pdf(
        self, invoice_id: uuid.UUID, *, original: bool = False, check_tenant: TenantCheck = anyone
    ) -> InvoiceFile:
        """The invoice as Factur-X PDF. A finalized invoice's PDF is rendered once and kept
        under the data dir with its SHA-256, and never changes; once paid, a paid copy (PAID,
        with the payment) is rendered from it unless `original` is asked for. A draft's is
        rendered each time, watermarked, and not kept. Raises what `document` raises."""
        invoice, doc, locale = await self.document(invoice_id, check_tenant)
        if invoice.status == InvoiceStatus.DRAFT:
            return InvoiceFile(invoice, await asyncio.to_thread(render_pdf, doc, locale), paid_copy=False)
        async with self.engine.connect() as conn:
            kept = await invoice_store.stored_pdf(conn, invoice_id)
        kept_pdf = None
        if kept is not None:
            kept_pdf = Path(kept.path).read_bytes()
            if hashlib.sha256(kept_pdf).hexdigest() != kept.sha256:
                kept_pdf = None
        if kept_pdf is None:
            unpaid = _unpaid(doc)
            kept_pdf = await asyncio.to_thread(render_pdf, unpaid, locale)
            name = pdf_filename(unpaid, invoice.tenant_id).removesuffix(".pdf")  # <number>_<tenant>
            path, sha256 = await asyncio.to_thread(store_pdf, self.config.data_dir, name, kept_pdf)
            async with self.engine.begin() as conn:
                await invoice_store.record_pdf(conn, invoice_id, sha256, str(path))
        if original or not doc.paid:
            return InvoiceFile(invoice, kept_pdf, paid_copy=False)
        return InvoiceFile(invoice, await asyncio.to_thread(render_pdf, doc, locale), paid_copy=True)

    async def einvoice(
        self, invoice_id: uuid.UUID, syntax: str, *, check_tenant: TenantCheck = anyone
    ) -> InvoiceFile:
        """The invoice as EN 16931 XML ("cii" or "ubl"), as issued, paid or not. Raises what
        `document` raises, and DraftInvoice."""
        invoice, doc, locale = await self.document(invoice_id, check_tenant)
        if invoice.status == InvoiceStatus.DRAFT:
            raise DraftInvoice(str(invoice_id))
        build = cii_xml if syntax == "cii" else ubl_xml
        return InvoiceFile(invoice, build(_unpaid(doc), Localizer(locale)), paid_copy=False)

    async def credit_note(
        self, credit_note_id: uuid.UUID, check_tenant: TenantCheck = anyone
    ) -> tuple[CreditNote, Invoice, InvoiceDocument, str]:
        """(the credit note, its invoice, its document, the buyer's locale). Raises
        CreditNoteNotFound, and what `check_tenant` raises."""
        async with self.engine.connect() as conn:
            row: Row[Any] | None = await credit_note_store.find(conn, credit_note_id)
            if row is None:
                raise credit_note_store.CreditNoteNotFound(str(credit_note_id))
            note = CreditNote.of(row)
            invoice = Invoice.of(await invoice_store.get(conn, note.invoice_id))
            check_tenant(invoice.tenant_id)
            buyer = await self._buyer(conn, invoice.tenant_id)
        document = {
            "number": note.number,
            "currency": note.currency,
            "subtotal": format(note.subtotal, "f"),
            "tax": format(note.tax, "f"),
            "total": format(note.total, "f"),
            "reason": note.reason,
            "created_at": note.created_at.isoformat(),
        }
        doc = build_credit_note(document, invoice_document(invoice), buyer.as_dict(), self.seller)
        return note, invoice, doc, buyer.locale

    async def credit_note_pdf(
        self, credit_note_id: uuid.UUID, *, check_tenant: TenantCheck = anyone
    ) -> CreditNoteFile:
        """The credit note as Factur-X PDF (type 381), rendered each time. Raises what
        `credit_note` raises."""
        note, invoice, doc, locale = await self.credit_note(credit_note_id, check_tenant)
        return CreditNoteFile(note, invoice, await asyncio.to_thread(render_pdf, doc, locale))

    async def credit_note_einvoice(
        self, credit_note_id: uuid.UUID, syntax: str, *, check_tenant: TenantCheck = anyone
    ) -> CreditNoteFile:
        """The credit note as EN 16931 XML ("cii" or "ubl"). Raises what `credit_note` raises."""
        note, invoice, doc, locale = await self.credit_note(credit_note_id, check_tenant)
        build = cii_xml if syntax == "cii" else ubl_xml
        return CreditNoteFile(note, invoice, build(doc, Localizer(locale)))


def invoice_view(
    invoice: Invoice, buyer: dict[str, object], seller: Seller, paying: invoice_store.PaymentContext
) -> InvoiceDocument:
    """The document of an invoice for its buyer, with how it is paid (issue 14 §4)."""
    method = {"stripe": PaymentMethod.CARD, "paypal": PaymentMethod.PAYPAL}.get(
        paying.method_on_file or "", PaymentMethod.TRANSFER
    )
    paid = invoice.status == InvoiceStatus.PAID
    # The payment's instant, or the audit entry's when marked paid by hand; failing both, the
    # finalization's (a paid invoice was finalized first, so there is one).
    paid_at = (paying.paid_at or invoice.finalized_at) if paid else None
    return build_invoice(
        invoice_document(invoice),
        buyer,
        seller,
        method=method,
        paid_on=None if paid_at is None else paid_at.date(),
        paid_by=paying.paid_by if paid else None,
        reference=None if invoice.number is None else wire_reference(invoice.number),
    )


def _unpaid(doc: InvoiceDocument) -> InvoiceDocument:
    """The invoice as finalized: what the kept original and the e-invoices show."""
    return replace(doc, payment=replace(doc.payment, paid_on=None, paid_by=None))


class _RateCache:
    """Exchange rates for one batch: the rate table is read once, when a rate is first needed."""

    def __init__(self, invoicer: Invoicer) -> None:
        self._invoicer = invoicer
        self._table: RateTable | None = None

    async def rate(self, price_currency: Currency, billing: Currency, on: date) -> FxRate | None:
        if price_currency == billing:
            return None
        if self._table is None:
            async with self._invoicer.engine.connect() as conn:
                source = self._invoicer.config.fx_source or ECB_SOURCE
                self._table = await fx_store.load_table(conn, source)
        return self._table.rate(price_currency, billing, on)  # NoRateInForce when none is loaded


@dataclass(frozen=True)
class Outcome:
    """One tenant's result in `invoice_many`: the invoice, or the error that stopped it."""

    invoice: Invoice | Exception
    created: bool


@dataclass(frozen=True)
class _Composed:
    invoice_id: uuid.UUID
    new: bool
    draft: InvoiceDraft
    ledger: CreditLedger
    spent: CreditLedger
    late: list[LateUsage]
    terms: TenantPricing  # the pricing settings rated under, kept on the invoice


_T = TypeVar("_T")


def _or_raise(value: _T | Exception) -> _T:
    if isinstance(value, Exception):
        raise value
    return value


class _DraftValues(TypedDict):
    """An invoice draft's columns and lines, as `invoice_store.replace_draft` takes them."""

    currency: str
    subtotal: Decimal
    tax: Decimal
    document: dict[str, object]
    lines: list[dict[str, object]]


def _draft_values(composed: _Composed) -> _DraftValues:
    draft = composed.draft
    return {
        "currency": draft.currency.code,
        "subtotal": draft.subtotal.major_units(),
        "tax": draft.tax.amount.major_units(),
        # The terms go with it, so late usage of this period is priced as the period was.
        "document": draft.to_json() | {"pricing": composed.terms.to_json()},
        "lines": [_line_row(line) for line in draft.lines],
    }


def last_day(period: Period) -> date:
    """The day whose tax rates and exchange rate an invoice for `period` uses."""
    return (period.end - timedelta(microseconds=1)).date()


def _billed_period(row: Row[Any]) -> BilledPeriod | None:
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


def invoice_document(invoice: Invoice) -> dict[str, object]:
    """The stored invoice as the renderer reads it: its composed document with id and number.
    The record's amounts stand in where the document has none (invoices imported as history,
    such as the forecasting demo's, carry only their totals)."""
    return {
        "currency": invoice.currency,
        "subtotal": format(invoice.subtotal, "f"),
        "tax": format(invoice.tax, "f"),
        "total": format(invoice.total, "f"),
        **invoice.document,
        "invoice_id": str(invoice.invoice_id),
        "number": invoice.number,
        "status": invoice.status.value,
        "tenant_id": invoice.tenant_id,
        "period_start": invoice.period.start.isoformat(),
        "period_end": invoice.period.end.isoformat(),
        "issued_at": None if invoice.finalized_at is None else invoice.finalized_at.isoformat(),
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
