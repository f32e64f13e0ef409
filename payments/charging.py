"""Taking a payment for an invoice: the payment row first, then the provider's charge.

Every provider call carries an idempotency key derived from our own row (`<payment id>:<attempt>`),
and the row is written before the call, so a request retried after a timeout or a crash repeats
the same call and the provider charges once. Provider SDKs block, so their calls run in a worker
thread.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import credit_note_store, invoice_store, payment_store
from infra.sealed_columns import CUSTOMER_REF, METHOD_REF
from invoicing.lifecycle import PAYABLE
from payments.context import PaymentContext
from payments.errors import (
    IdempotencyKeyReused,
    NoPaymentMethod,
    NoSuchInvoice,
    NotPayable,
    PaymentDeclined,
    PaymentInProgress,
)
from payments.gateway import ChargeRequest, Report, SavedMethod
from payments.lifecycle import PaymentState
from payments.records import Payment, PaymentTaken
from payments.settlement import audit_created, settle
from payments.views import details_of
from pricing.money import Currency

_ATTACH_FIRST = "attach a {} payment method first: POST /tenants/{{id}}/payment-methods"


async def take_payment(
    ctx: PaymentContext,
    invoice_id: uuid.UUID,
    method: str,
    idempotency_key: str,
    actor: str,
    check_tenant: Callable[[str], None],
) -> PaymentTaken:
    """The payment of this Idempotency-Key: made and charged once, returned as it is after.
    `check_tenant` raises when the caller may not see the invoice's tenant."""
    provider = ctx.providers.provider(method)
    async with ctx.engine.begin() as conn:
        row = await payment_store.find_by_key(conn, idempotency_key)
        created = row is None
        if row is None:
            row = await _new_payment(ctx, conn, invoice_id, method, idempotency_key, actor, check_tenant)
        payment = Payment.of(row)
        check_tenant(payment.tenant_id)  # first: another tenant learns nothing about the key
        if (payment.invoice_id, payment.method) != (invoice_id, provider.name):
            raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was used for another payment")
    if payment.status == PaymentState.PENDING and payment.attempts == 0:
        # Never charged, or the charge's outcome was never recorded (a crash, a timeout): the
        # same provider key again, so the provider charges at most once.
        payment = await charge(ctx, payment, 1, actor)
    return PaymentTaken(await details_of(ctx, payment), created)


async def _new_payment(
    ctx: PaymentContext,
    conn: AsyncConnection,
    invoice_id: uuid.UUID,
    method: str,
    idempotency_key: str,
    actor: str,
    check_tenant: Callable[[str], None],
) -> Any:
    invoice = await credit_note_store.lock_invoice(conn, invoice_id)
    if invoice is None:
        raise NoSuchInvoice(str(invoice_id))
    check_tenant(invoice.tenant_id)
    if invoice.status not in PAYABLE:
        raise NotPayable(f"invoice {invoice_id} is {invoice.status}")
    pending = [
        p for p in await payment_store.of_invoice(conn, invoice_id) if p.status == PaymentState.PENDING
    ]
    if pending:
        raise PaymentInProgress(f"payment {pending[0].payment_id} of this invoice is still pending")
    due = await payment_store.amount_due(conn, invoice)
    if due <= 0:
        raise NotPayable(f"nothing is due on invoice {invoice_id}")
    provider = ctx.providers.provider(method)
    if (
        provider.saved_method is SavedMethod.REQUIRED
        and await payment_store.find_method(conn, invoice.tenant_id, method) is None
    ):
        raise NoPaymentMethod(_ATTACH_FIRST.format(provider.display_name))
    row = await payment_store.insert_payment(
        conn,
        payment_id=uuid.uuid4(),
        invoice_id=invoice_id,
        tenant_id=invoice.tenant_id,
        method=method,
        idempotency_key=idempotency_key,
        status=PaymentState.PENDING.value,
        amount=due,
        currency=invoice.currency,
        created_by=actor,
    )
    if row is None:  # a concurrent twin with the same key made it
        return await payment_store.find_by_key(conn, idempotency_key)
    await audit_created(conn, Payment.of(row), actor)
    return row


async def charge(ctx: PaymentContext, payment: Payment, attempt: int, actor: str) -> Payment:
    """Charge `payment` (attempt number `attempt`) and record what the provider said."""
    async with ctx.engine.connect() as conn:
        invoice = await invoice_store.get(conn, payment.invoice_id)
        saved = await payment_store.find_method(conn, payment.tenant_id, payment.method)
    request = ChargeRequest(
        invoice_id=str(payment.invoice_id),
        invoice_number=invoice.number,
        amount=payment.amount,
        currency=Currency.of(payment.currency),
        idempotency_key=f"{payment.payment_id}:{attempt}",
        customer_id=None
        if saved is None or saved.customer_ref is None
        else ctx.cipher.decrypt(CUSTOMER_REF.field, saved.customer_ref),
        payment_method_id=None if saved is None else ctx.cipher.decrypt(METHOD_REF.field, saved.method_ref),
    )
    try:
        report = await asyncio.to_thread(_charge, ctx, payment.method, request)
    except PaymentDeclined as declined:
        report = Report(PaymentState.FAILED, declined.transaction_id, failure_code=declined.decline_code)
    except Exception as error:
        # The provider's answer is unknown (down, timed out, refused the request): the payment
        # fails and dunning tries again with a new key; it never stays pending forever.
        failed = Report(PaymentState.FAILED, failure_code=type(error).__name__)
        await settle(ctx, payment.payment_id, failed, attempt, actor=actor)
        raise
    return await settle(ctx, payment.payment_id, report, attempt, actor=actor)


def _charge(ctx: PaymentContext, method: str, request: ChargeRequest) -> Report:
    provider = ctx.providers.provider(method)
    if provider.saved_method is SavedMethod.REQUIRED and not request.payment_method_id:
        raise NoPaymentMethod(_ATTACH_FIRST.format(provider.display_name))
    return Report.of(ctx.providers.gateway(method).charge(request))
