"""Invoices: one per tenant and period, composed from live usage (invoicing/service.py), finalized
with a gapless number. The same tenant and period again returns the same invoice. Each handler
parses, calls one use case of `invoicing/`, and renders the record it returns."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response

from invoicing import status_change
from invoicing.corrections import NotCreditable, issue_credit_note
from invoicing.errors import DraftInvoice
from invoicing.invoices import (
    CreditNoteNotFound,
    InvoiceNotFound,
    credit_notes_of,
    find_invoice,
    tenant_invoices,
)
from invoicing.lifecycle import InvoiceStatus
from invoicing.records import CreditNote, Invoice
from invoicing.service import TenantCheck, invoice_document
from pricing.errors import InvalidField
from pricing.money import plain
from pricing.periods import Period, on_whole_hour
from serve.access import authorized
from serve.auth import Principal
from serve.free_text import NO_CARD_NUMBERS
from serve.instants import RFC_3339
from serve.problems import Problem
from serve.routes.pricing_support import (
    RATING_ERRORS,
    check_reads_tenant,
    invalid,
    json_response,
    rating_problem,
)
from serve.services import services
from serve.usage_events import TENANT_ID

router = APIRouter(prefix="/api/v1", tags=["invoices"])


class InvoiceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=TENANT_ID)]
    period_start: Annotated[AwareDatetime, RFC_3339]
    period_end: Annotated[AwareDatetime, RFC_3339]


@router.post("/invoices", status_code=201, summary="The tenant's invoice for a closed period (idempotent)")
async def create_invoice(
    request: Request,
    body: InvoiceRequest,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    try:
        invoice, created = await services(request).invoicer.invoice(
            body.tenant_id, _closed_period(body), principal.subject
        )
    except RATING_ERRORS as error:
        raise rating_problem(error) from None
    return json_response(_view(invoice), status=201 if created else 200)


@router.get("/invoices", summary="A tenant's invoices, the latest period first")
async def list_invoices(
    request: Request,
    tenant_id: Annotated[str, Query(pattern=TENANT_ID)],
    principal: Annotated[Principal, Depends(authorized)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    check_reads_tenant(principal, tenant_id)
    invoices = await tenant_invoices(services(request).engine, tenant_id, limit)
    return json_response({"tenant_id": tenant_id, "invoices": [_view(invoice) for invoice in invoices]})


@router.get("/invoices/{invoice_id}", summary="An invoice")
async def get_invoice(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    invoice = await find_invoice(services(request).engine, invoice_id)
    if invoice is None:
        raise _no_such_invoice(invoice_id)
    check_reads_tenant(principal, invoice.tenant_id)
    return json_response(_view(invoice))


@router.post("/invoices/{invoice_id}/finalize", summary="Number and freeze a draft (idempotent)")
async def finalize_invoice(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    try:
        invoice = await services(request).invoicer.finalize(invoice_id, principal.subject)
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    except RATING_ERRORS as error:
        raise rating_problem(error) from None
    return json_response(_view(invoice))


class CreditNoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=500), NO_CARD_NUMBERS]
    # Net of tax, in the invoice's currency; omitted: everything not yet credited. Bounded like a
    # credit grant's (15 digits), so its minor units stay within the 34 digits money is computed in.
    amount: Annotated[Decimal, Field(gt=0, lt=Decimal("1e15"), allow_inf_nan=False)] | None = None


@router.post(
    "/invoices/{invoice_id}/credit-notes", status_code=201, summary="Credit part or all of an invoice"
)
async def create_credit_note(
    request: Request,
    invoice_id: uuid.UUID,
    body: CreditNoteRequest,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    try:
        note = await issue_credit_note(
            services(request).engine, invoice_id, body.amount, body.reason, principal.subject
        )
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    except NotCreditable as error:
        raise Problem(409, "not-creditable", "Invoice cannot be credited", str(error)) from None
    except InvalidField as error:
        raise invalid(error) from None
    return json_response(_credit_note_view(note), status=201)


@router.get("/invoices/{invoice_id}/credit-notes", summary="An invoice's credit notes")
async def list_credit_notes(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    try:
        notes = await credit_notes_of(services(request).engine, invoice_id, _reader(principal))
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    return json_response(
        {"invoice_id": str(invoice_id), "credit_notes": [_credit_note_view(n) for n in notes]}
    )


@router.get(
    "/invoices/{invoice_id}/pdf",
    summary="The invoice as Factur-X PDF (PDF/A-3 with factur-x.xml, EN 16931); finalized: rendered "
    "once and kept, and once paid a paid copy unless original=true; draft: watermarked",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(
    request: Request,
    invoice_id: uuid.UUID,
    principal: Annotated[Principal, Depends(authorized)],
    original: Annotated[bool, Query(description="the PDF as finalized, even once paid")] = False,
) -> Response:
    try:  # the tenant is checked before any rendering work
        pdf = await services(request).invoicer.pdf(
            invoice_id, original=original, check_tenant=_reader(principal)
        )
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    invoice = pdf.invoice
    number = invoice.number or f"draft-{str(invoice_id)[:8]}"
    suffix = "_paid" if pdf.paid_copy else ""
    return _file(pdf.content, "application/pdf", _filename(number, invoice.tenant_id, suffix, "pdf"))


Syntax = Literal["cii", "ubl"]
SYNTAX_QUERY = Query(description="cii: UN/CEFACT CII (Factur-X); ubl: UBL 2.1 (XRechnung)")


@router.get(
    "/invoices/{invoice_id}/einvoice",
    summary="The finalized invoice as EN 16931 XML: CII (Factur-X) or UBL 2.1 (XRechnung)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def invoice_einvoice(
    request: Request,
    invoice_id: uuid.UUID,
    principal: Annotated[Principal, Depends(authorized)],
    syntax: Annotated[Syntax, SYNTAX_QUERY] = "cii",
) -> Response:
    try:
        xml = await services(request).invoicer.einvoice(invoice_id, syntax, check_tenant=_reader(principal))
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    except DraftInvoice:
        raise Problem(
            409, "draft", "A draft has no e-invoice", "invoice_id: finalize the invoice first"
        ) from None
    invoice = xml.invoice
    assert invoice.number is not None  # einvoice raised DraftInvoice for one without
    filename = _filename(invoice.number, invoice.tenant_id, f"_{syntax}", "xml")
    return _file(xml.content, "application/xml", filename)


@router.get(
    "/credit-notes/{credit_note_id}/pdf",
    summary="The credit note as Factur-X PDF (type 381)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def credit_note_pdf(
    request: Request, credit_note_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    try:
        pdf = await services(request).invoicer.credit_note_pdf(
            credit_note_id, check_tenant=_reader(principal)
        )
    except CreditNoteNotFound:
        raise _no_such_credit_note(credit_note_id) from None
    return _file(pdf.content, "application/pdf", _filename(pdf.note.number, pdf.invoice.tenant_id, "", "pdf"))


@router.get(
    "/credit-notes/{credit_note_id}/einvoice",
    summary="The credit note as EN 16931 XML (type 381): CII or UBL 2.1",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
async def credit_note_einvoice(
    request: Request,
    credit_note_id: uuid.UUID,
    principal: Annotated[Principal, Depends(authorized)],
    syntax: Annotated[Syntax, SYNTAX_QUERY] = "cii",
) -> Response:
    try:
        xml = await services(request).invoicer.credit_note_einvoice(
            credit_note_id, syntax, check_tenant=_reader(principal)
        )
    except CreditNoteNotFound:
        raise _no_such_credit_note(credit_note_id) from None
    filename = _filename(xml.note.number, xml.invoice.tenant_id, f"_{syntax}", "xml")
    return _file(xml.content, "application/xml", filename)


def _filename(number: str, tenant_id: str, suffix: str, extension: str) -> str:
    """`ENIS-2025-000042_acme.pdf`: files named by document number and tenant (issue 14)."""
    return re.sub(r"[^0-9A-Za-z._-]", "-", f"{number}_{tenant_id}{suffix}") + f".{extension}"


def _file(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )


def _closed_period(body: InvoiceRequest) -> Period:
    for name, value in (("period_start", body.period_start), ("period_end", body.period_end)):
        if not on_whole_hour(value):
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


def _view(invoice: Invoice) -> dict[str, object]:
    """design.md §4's shape: the stored document with its id, number, status and PDF link."""
    return {
        **invoice_document(invoice),
        "pdf_url": f"/api/v1/invoices/{invoice.invoice_id}/pdf",
        "einvoice_url": f"/api/v1/invoices/{invoice.invoice_id}/einvoice",
    }


def _credit_note_view(note: CreditNote) -> dict[str, object]:
    return {
        "credit_note_id": str(note.credit_note_id),
        "number": note.number,
        "invoice_id": str(note.invoice_id),
        "invoice_number": note.invoice_number,
        "currency": note.currency,
        "subtotal": format(note.subtotal, "f"),
        "tax": format(note.tax, "f"),
        "total": format(note.total, "f"),
        "tax_rate": plain(note.tax_rate),  # as the note keeps it
        "reason": note.reason,
        "created_at": note.created_at.isoformat(),
        "pdf_url": f"/api/v1/credit-notes/{note.credit_note_id}/pdf",
        "einvoice_url": f"/api/v1/credit-notes/{note.credit_note_id}/einvoice",
    }


def _reader(principal: Principal) -> TenantCheck:
    """The use cases' tenant check for this caller: 403 unless it may read the tenant's data."""
    return lambda tenant_id: check_reads_tenant(principal, tenant_id)


def _no_such_invoice(invoice_id: uuid.UUID) -> Problem:
    return Problem(404, "not-found", "No such invoice", f"invoice_id: {invoice_id} does not exist")


def _no_such_credit_note(credit_note_id: uuid.UUID) -> Problem:
    return Problem(
        404, "not-found", "No such credit note", f"credit_note_id: {credit_note_id} does not exist"
    )


# POST /invoices/{id}/{action}: the lifecycle after finalization (Stripe's verbs). Declared last:
# a parameter in the verb's place would otherwise shadow the routes above.
ACTIONS = {
    "void": InvoiceStatus.VOID,
    "mark-uncollectible": InvoiceStatus.UNCOLLECTIBLE,
    "mark-paid": InvoiceStatus.PAID,
}


class _Action(StringConvertor):
    """Only the verbs match the path, so POST /invoices/{id}/pdf is 405 (GET only), not a 422
    from this route (issue 15). The OpenAPI path stays /invoices/{invoice_id}/{action}."""

    regex = "|".join(ACTIONS)


register_url_convertor("invoice_action", _Action())


@router.post(
    "/invoices/{invoice_id}/{action:invoice_action}", summary="Void, mark uncollectible or mark paid"
)
async def change_status(
    request: Request,
    invoice_id: uuid.UUID,
    action: Literal["void", "mark-uncollectible", "mark-paid"],
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    try:
        invoice = await status_change.change_status(
            services(request).engine, invoice_id, ACTIONS[action], actor=principal.subject
        )
    except InvoiceNotFound:
        raise _no_such_invoice(invoice_id) from None
    except status_change.InvalidTransition as error:
        raise Problem(409, "invalid-transition", "Invoice status cannot change so", str(error)) from None
    return json_response(_view(invoice))
