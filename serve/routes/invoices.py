"""Invoices: one per tenant and period, composed from live usage (invoicing/service.py), finalized
with a gapless number. The same tenant and period again returns the same invoice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from infra import invoice_store
from invoicing.service import invoice_document
from pricing.errors import InvalidField
from pricing.periods import Period, on_whole_hour
from serve.auth import Principal, allow
from serve.problems import Problem
from serve.routes.pricing_support import (
    RATING_ERRORS,
    STAFF,
    check_reads_tenant,
    invalid,
    invoicer,
    json_response,
    rating_problem,
)
from serve.services import services
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
    try:
        row, created = await invoicer(request).invoice(
            body.tenant_id, _closed_period(body), principal.subject
        )
    except RATING_ERRORS as error:
        raise rating_problem(error) from None
    return json_response(_view(row), status=201 if created else 200)


@router.get("/invoices/{invoice_id}", summary="An invoice")
async def get_invoice(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(allow(*STAFF, "tenant"))]
) -> Response:
    return json_response(_view(await _readable_invoice(request, invoice_id, principal)))


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


@router.get(
    "/invoices/{invoice_id}/pdf",
    summary="The invoice as PDF (finalized: rendered once and kept; draft: watermarked)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def invoice_pdf(
    request: Request, invoice_id: uuid.UUID, principal: Annotated[Principal, Depends(allow(*STAFF, "tenant"))]
) -> Response:
    row = await _readable_invoice(request, invoice_id, principal)  # before any rendering work
    _, pdf = await invoicer(request).pdf(invoice_id)
    filename = f"{row.number or 'draft-' + str(invoice_id)[:8]}.pdf"
    return Response(
        pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}"'}
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


def _view(row) -> dict[str, object]:
    """design.md §4's shape: the stored document with its id, number, status and PDF link."""
    return {**invoice_document(row), "pdf_url": f"/api/v1/invoices/{row.invoice_id}/pdf"}


async def _readable_invoice(request: Request, invoice_id: uuid.UUID, principal: Principal):
    """The invoice row, when it exists and the caller may read its tenant's data."""
    async with services(request).engine.connect() as conn:
        row = await invoice_store.find(conn, invoice_id)
    if row is None:
        raise _no_such_invoice(invoice_id)
    check_reads_tenant(principal, row.tenant_id)
    return row


def _no_such_invoice(invoice_id: uuid.UUID) -> Problem:
    return Problem(404, "not-found", "No such invoice", f"invoice_id: {invoice_id} does not exist")
