"""Invoices: one per tenant and period, composed from live usage, finalized with a gapless number.

POST composes the tenant's invoice for a closed period (rating, FX at the period's last day, the
credits in ledger order, tax once on the subtotal after credits) and stores it as a draft with its
credit debits in one transaction; the same tenant and period again returns the same invoice.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.responses import Response

from infra import fx_store, invoice_store, pricing_store
from infra.schema import tenants
from invoicing.composition import InvoiceLine, compose_invoice
from pricing.errors import InvalidField
from pricing.fx import FxRate, NoRateInForce
from pricing.money import Currency
from pricing.periods import Period
from pricing.rating import Rating
from serve.auth import Principal, allow
from serve.problems import Problem
from serve.routes.pricing_support import STAFF, check_reads_tenant, invalid, json_response, no_such_tenant
from serve.services import Services, services
from serve.tenant_rating import live_usage_for, rate_for, terms_for
from serve.usage_events import TENANT_ID

router = APIRouter(prefix="/api/v1", tags=["invoices"])
BILLERS = ("billing-admin", "finance")


class InvoiceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=TENANT_ID)]
    period_start: AwareDatetime
    period_end: AwareDatetime


@router.post("/invoices", status_code=201, summary="The tenant's invoice for a closed period (idempotent)")
async def create_invoice(
    request: Request,
    body: InvoiceRequest,
    principal: Annotated[Principal, Depends(allow(*BILLERS))],
) -> Response:
    svc = services(request)
    period = _closed_period(body)
    async with svc.engine.connect() as conn:
        existing = await invoice_store.find_for_period(conn, body.tenant_id, period.start, period.end)
        buyer = (await conn.execute(select(tenants).where(tenants.c.tenant_id == body.tenant_id))).first()
        generations = await pricing_store.tenant_generations(conn, body.tenant_id)
    if existing is not None:
        return json_response(_view(existing))
    if buyer is None or generations is None:
        raise no_such_tenant(body.tenant_id)
    catalog, settings = await terms_for(request, generations)
    usage = await live_usage_for(svc, body.tenant_id, period)
    rating = rate_for(usage, settings, catalog, period, field="period_start")
    fx = await _fx(svc, rating, Currency.of(buyer.currency), period)
    invoice_id = uuid.uuid4()
    async with svc.engine.begin() as conn:
        await pricing_store.lock_tenant(conn, body.tenant_id)  # one ledger writer at a time
        ledger = await pricing_store.load_ledger(conn, body.tenant_id, buyer.currency)
        try:
            draft, spent = compose_invoice(
                rating,
                billing_currency=Currency.of(buyer.currency),
                fx=fx,
                ledger=ledger,
                at=datetime.now(UTC),
                reference=str(invoice_id),
                seller_country=svc.settings.seller_country,
                buyer_country=buyer.country,
                buyer_vat_id=buyer.vat_id,
                buyer_region=buyer.region,
                tax_date=(period.end - timedelta(microseconds=1)).date(),
            )
        except InvalidField as error:
            raise invalid(error) from None
        stored_id, created = await invoice_store.insert_draft(
            conn,
            invoice_id=invoice_id,
            tenant_id=body.tenant_id,
            period_start=period.start,
            period_end=period.end,
            currency=draft.currency.code,
            subtotal=draft.subtotal.major_units(),
            tax=draft.tax.amount.major_units(),
            issuer=svc.settings.issuer,
            document=draft.to_json(),
            lines=[_line_row(line) for line in draft.lines],
        )
        if created:
            for entry in spent.entries[len(ledger.entries) :]:
                ledger = await pricing_store.append_ledger_entry(conn, ledger, entry, principal.subject)
        row = await invoice_store.find(conn, stored_id)
    return json_response(_view(row), status=201 if created else 200)


@router.get("/invoices/{invoice_id}", summary="An invoice")
async def get_invoice(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(allow(*STAFF, "tenant"))]
) -> Response:
    async with services(request).engine.connect() as conn:
        row = await invoice_store.find(conn, invoice_id)
    if row is None:
        raise _no_such_invoice(invoice_id)
    check_reads_tenant(principal, row.tenant_id)
    return json_response(_view(row))


@router.post("/invoices/{invoice_id}/finalize", summary="Number and freeze a draft (idempotent)")
async def finalize_invoice(
    request: Request, invoice_id: uuid.UUID, _: Annotated[Principal, Depends(allow(*BILLERS))]
) -> Response:
    async with services(request).engine.begin() as conn:
        try:
            await invoice_store.finalize(conn, invoice_id)
        except invoice_store.InvoiceNotFound:
            raise _no_such_invoice(invoice_id) from None
        row = await invoice_store.find(conn, invoice_id)
    return json_response(_view(row))


def _closed_period(body: InvoiceRequest) -> Period:
    for name, value in (("period_start", body.period_start), ("period_end", body.period_end)):
        if value.minute or value.second or value.microsecond or value.utcoffset().seconds % 3600:
            raise Problem(
                422,
                "validation",
                "Invalid invoice period",
                f"{name}: must fall on a whole UTC hour",
                [{"field": name, "message": "must fall on a whole UTC hour"}],
            )
    if body.period_end > datetime.now(UTC):
        raise Problem(
            422,
            "validation",
            "Invalid invoice period",
            "period_end: the period has not ended yet",
            [{"field": "period_end", "message": "the period has not ended yet"}],
        )
    try:
        return Period(body.period_start.astimezone(UTC), body.period_end.astimezone(UTC))
    except InvalidField as error:
        raise invalid(error) from None


async def _fx(svc: Services, rating: Rating, billing: Currency, period: Period) -> FxRate | None:
    if rating.currency == billing:
        return None
    on = (period.end - timedelta(microseconds=1)).date()
    async with svc.engine.connect() as conn:
        table = await fx_store.load_table(conn)
    try:
        return table.rate(rating.currency, billing, on)
    except NoRateInForce as error:
        raise Problem(
            409, "conflict", "No exchange rate", f"fx: {error}; load rates with `billing fx load`"
        ) from None


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


def _view(row) -> dict[str, object]:
    """design.md §4's shape: the stored document with its id, number and status."""
    return {
        "invoice_id": str(row.invoice_id),
        "number": row.number,
        "status": row.status,
        "tenant_id": row.tenant_id,
        "period_start": row.period_start.isoformat(),
        "period_end": row.period_end.isoformat(),
        "pdf_url": None,  # PDFs arrive with the rest of issue 4
        **row.document,
    }


def _no_such_invoice(invoice_id: uuid.UUID) -> Problem:
    return Problem(404, "not-found", "No such invoice", f"invoice_id: {invoice_id} does not exist")
