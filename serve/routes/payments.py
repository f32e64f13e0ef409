"""Payments: take one for an invoice (any registered method), read it, refund it; attach a
tenant's provider payment method (ids only: card data never reaches us); import bank statements.
Each handler parses, calls one use case of `payments/`, and renders the record it returns."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from payments import charging, payment_methods, providers, reconciliation, refunds, views
from payments.bank_statements import InvalidStatement, read_camt053, read_csv
from payments.errors import (
    IdempotencyKeyReused,
    NoPaymentMethod,
    NoSuchInvoice,
    NotPayable,
    PaymentError,
    PaymentInProgress,
    PaymentNotFound,
    ProviderUnavailable,
)
from payments.records import EntryOutcome, PaymentDetails, Refund
from pricing.errors import InvalidField
from serve.access import authorized
from serve.auth import Principal
from serve.free_text import NO_CARD_NUMBERS
from serve.problems import Problem
from serve.routes.pricing_support import check_reads_tenant, invalid, invalid_field, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["payments"])
IDEMPOTENCY_KEY = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
# 13 to 19 digits, spaces or dashes between: what a card number looks like before the Luhn check.
CARD_LIKE = re.compile(r"(?:\d[ -]?){12,18}\d")


def _one_of(value: str, names: tuple[str, ...]) -> str:
    if value not in names:
        raise ValueError(f"must be one of {', '.join(names)}")
    return value


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: uuid.UUID
    payment_method: Annotated[str, Field(json_schema_extra={"enum": list(providers.names())})]

    @field_validator("payment_method")
    @classmethod
    def registered(cls, value: str) -> str:
        return _one_of(value, providers.names())


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None
    reason: Annotated[str, Field(max_length=500), NO_CARD_NUMBERS] | None = None


class MethodRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Annotated[str, Field(json_schema_extra={"enum": list(providers.attachable())})]
    payment_method_id: Annotated[str, Field(min_length=3, max_length=200)]
    customer_id: Annotated[str, Field(min_length=3, max_length=200)] | None = None

    @field_validator("provider")
    @classmethod
    def attachable(cls, value: str) -> str:
        return _one_of(value, providers.attachable())

    @field_validator("payment_method_id", "customer_id")
    @classmethod
    def no_card_numbers(cls, value: str | None) -> str | None:
        if value is not None and any(luhn_valid(m.group()) for m in CARD_LIKE.finditer(value)):
            raise ValueError(
                "looks like a card number; card data is never accepted here: attach the card at the "
                "provider (Stripe SetupIntent, PayPal approval) and send the id it gives you"
            )
        return value


def luhn_valid(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return 13 <= len(digits) <= 19 and checksum % 10 == 0


@router.post("/payments", status_code=201, summary="Pay an invoice (honours Idempotency-Key)")
async def create_payment(
    request: Request,
    body: PaymentRequest,
    principal: Annotated[Principal, Depends(authorized)],
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> Response:
    key = idempotency_key or f"auto:{uuid.uuid4()}"  # without a key, each request is a new payment
    with _payment_problems():
        taken = await charging.take_payment(
            services(request).payments,
            body.invoice_id,
            body.payment_method,
            key,
            principal.subject,
            lambda tenant_id: check_reads_tenant(principal, tenant_id),
        )
    return json_response(_view(taken.details), status=201 if taken.created else 200)


@router.get("/payments/{payment_id}", summary="A payment with its attempts, reminders and refunds")
async def get_payment(
    request: Request, payment_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    details = await views.payment_details(services(request).payments, payment_id)
    if details is None:
        raise _no_such_payment(payment_id)
    check_reads_tenant(principal, details.payment.tenant_id)
    return json_response(_view(details))


@router.post("/payments/{payment_id}/refunds", status_code=201, summary="Refund all or part of a payment")
async def refund_payment(
    request: Request,
    payment_id: uuid.UUID,
    body: RefundBody,
    principal: Annotated[Principal, Depends(authorized)],
    idempotency_key: IDEMPOTENCY_KEY = None,
) -> Response:
    key = idempotency_key or f"auto:{uuid.uuid4()}"
    with _payment_problems():
        made = await refunds.refund_payment(
            services(request).payments, payment_id, body.amount, key, body.reason, principal.subject
        )
    return json_response(_refund_view(made), status=201)


@router.post(
    "/tenants/{tenant_id}/payment-methods", status_code=204, summary="Attach a provider payment method"
)
async def attach_method(
    request: Request,
    tenant_id: str,
    body: MethodRequest,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    check_reads_tenant(principal, tenant_id)
    with _payment_problems():
        await payment_methods.attach_method(
            services(request).payments, tenant_id, body.provider, body.payment_method_id, body.customer_id
        )
    return Response(status_code=204)


@router.post(
    "/bank-statements",
    summary="Import a bank statement (camt.053 XML or CSV) and apply its credits",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": {"type": "string"}}
                for media_type in ("application/xml", "text/xml", "text/csv")
            },
        }
    },
)
async def import_statement(
    request: Request, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    try:
        if kind in ("application/xml", "text/xml"):
            credits = list(read_camt053(body))
        elif kind == "text/csv":
            credits = list(read_csv(body.decode("utf-8-sig")))
        else:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported statement",
                "send application/xml (camt.053) or text/csv",
            )
    except (InvalidStatement, UnicodeDecodeError) as error:
        raise invalid_field("statement", str(error)) from None
    with _payment_problems():
        entries = await reconciliation.reconcile(services(request).payments, credits, principal.subject)
    return json_response({"entries": [_entry_view(entry) for entry in entries]})


@contextmanager
def _payment_problems() -> Iterator[None]:
    """Domain errors of payments as problem responses."""
    try:
        yield
    except NoSuchInvoice as error:
        raise Problem(404, "not-found", "No such invoice", f"invoice_id: {error} does not exist") from None
    except PaymentNotFound as error:
        raise Problem(404, "not-found", "Not found", str(error)) from None
    except (NotPayable, PaymentInProgress, NoPaymentMethod) as error:
        raise Problem(409, "conflict", "Payment not possible now", str(error)) from None
    except IdempotencyKeyReused as error:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            str(error),
            [{"field": "Idempotency-Key", "message": str(error)}],  # a 422 names its field
        ) from None
    except InvalidField as error:
        raise invalid(error) from None
    except ProviderUnavailable as error:
        raise Problem(
            503,
            "provider-unavailable",
            "Payment provider unavailable",
            str(error),
            headers={"Retry-After": "5"},
        ) from None
    except PaymentError as error:
        raise Problem(502, "provider-error", "Payment provider refused the request", str(error)) from None


def _view(details: PaymentDetails) -> dict[str, object]:
    payment = details.payment
    return {
        "payment_id": str(payment.payment_id),
        "invoice_id": str(payment.invoice_id),
        "tenant_id": payment.tenant_id,
        "payment_method": payment.method,
        "status": payment.status.value,
        "transaction_id": payment.transaction_id,
        "amount": format(payment.amount, "f"),
        "received": format(payment.received, "f"),
        "refunded": format(payment.refunded, "f"),
        "currency": payment.currency,
        "approval_url": payment.approval_url,
        "instructions": payment.instructions,
        "failure_code": payment.failure_code,
        "next_retry_at": None if payment.next_retry_at is None else payment.next_retry_at.isoformat(),
        "attempts": [
            {
                "attempt": a.attempt,
                "at": a.at.isoformat(),
                "outcome": a.outcome,
                "failure_code": a.failure_code,
                "reminder": a.reminder,
            }
            for a in details.attempts
        ],
        "refunds": [_refund_view(r) for r in details.refunds],
    }


def _refund_view(refund: Refund) -> dict[str, object]:
    return {
        "refund_id": str(refund.refund_id),
        "payment_id": str(refund.payment_id),
        "amount": format(refund.amount, "f"),
        "status": refund.status,
        "reason": refund.reason,
        "created_at": refund.created_at.isoformat(),
    }


def _entry_view(entry: EntryOutcome) -> dict[str, object]:
    if entry.seen_before:
        return {"entry_id": entry.entry_id, "match": entry.match}
    return {
        "entry_id": entry.entry_id,
        "match": entry.match,
        "invoice_id": None if entry.invoice_id is None else str(entry.invoice_id),
        "applied": format(entry.applied, "f"),
        "overpaid": format(entry.overpaid, "f"),
        "remaining_due": None if entry.remaining_due is None else format(entry.remaining_due, "f"),
    }


def _no_such_payment(payment_id: uuid.UUID) -> Problem:
    return Problem(404, "not-found", "No such payment", f"payment_id: {payment_id} does not exist")
