"""Applying a bank statement: each credit to the open invoice its reference names, once per bank
entry. A credit settles the invoice's bank-transfer payment (made here when the payer sent money
without asking for instructions first); an over-payment becomes a prepaid credit on the tenant's
ledger. This is the bank-transfer method's own job: its references and its payments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import payment_store, pricing_store
from infra.sealed_columns import DEBTOR_REF
from invoicing.credits import record_entries
from invoicing.lifecycle import InvoiceStatus
from invoicing.references import wire_reference
from invoicing.status_change import move_invoice
from payments.bank_statements import BankCredit
from payments.context import PaymentContext
from payments.gateway import Report
from payments.lifecycle import PaymentState
from payments.matching import OpenInvoice, PaymentMatch, match_payments
from payments.records import EntryOutcome, Payment
from payments.settlement import apply_report, audit_created, audit_moved, locked
from payments.wire import WIRE
from pricing.credits import Grant, GrantKind
from pricing.money import Currency, Money


async def reconcile(ctx: PaymentContext, credits: list[BankCredit], actor: str) -> tuple[EntryOutcome, ...]:
    """Apply a statement's credits to open invoices by reference; what each entry did."""
    async with ctx.engine.begin() as conn:
        await payment_store.lock_reconciliation(conn)
        known = await payment_store.known_bank_entries(conn, [c.entry_id for c in credits])
        fresh = [credit for credit in credits if credit.entry_id not in known]
        invoices = {row.invoice_id: row for row in await payment_store.open_invoices(conn)}
        open_invoices = [
            OpenInvoice(
                row.invoice_id,
                row.number,
                wire_reference(row.number),
                max(Decimal(0), await payment_store.amount_due(conn, row)),  # credited away: 0
                Currency.of(row.currency),
            )
            for row in invoices.values()
        ]
        results = [EntryOutcome(entry_id, "duplicate", seen_before=True) for entry_id in sorted(known)]
        for match in match_payments(fresh, open_invoices):
            await _book(ctx, conn, match, invoices.get(match.invoice_id), actor)
            results.append(
                EntryOutcome(
                    match.credit.entry_id,
                    match.kind.value,
                    invoice_id=match.invoice_id,
                    applied=match.applied,
                    overpaid=match.overpaid,
                    remaining_due=match.remaining_due,
                )
            )
    return tuple(results)


async def _book(
    ctx: PaymentContext, conn: AsyncConnection, match: PaymentMatch, invoice: Any, actor: str
) -> None:
    credit = match.credit
    debtor = ctx.cipher.encrypt(DEBTOR_REF.field, credit.debtor) if credit.debtor else None
    fresh = await payment_store.insert_bank_credit(
        conn,
        entry_id=credit.entry_id,
        amount=credit.amount,
        currency=credit.currency.code,
        booking_date=credit.booking_date,
        reference=credit.reference,
        debtor_ref=debtor,
        match=match.kind.value,
        invoice_id=match.invoice_id,
        applied=match.applied,
        overpaid=match.overpaid,
    )
    if not fresh or invoice is None:
        return  # applied before (a concurrent import), or nobody's: finance settles it by hand
    if match.overpaid > 0:
        await _credit_overpayment(conn, invoice.tenant_id, credit, match.overpaid, actor)
    if match.applied <= 0:
        return
    payment = next(
        (
            Payment.of(p)
            for p in await payment_store.of_invoice(conn, invoice.invoice_id)
            if p.method == WIRE.name and p.status == PaymentState.PENDING
        ),
        None,
    )
    if payment is None:
        payment = Payment.of(
            await payment_store.insert_payment(
                conn,
                payment_id=uuid.uuid4(),
                invoice_id=invoice.invoice_id,
                tenant_id=invoice.tenant_id,
                method=WIRE.name,
                idempotency_key=f"bank:{credit.entry_id}",
                status=PaymentState.PENDING.value,
                amount=match.applied,
                currency=invoice.currency,
                transaction_id=wire_reference(invoice.number),
                created_by=actor,
            )
        )
        await audit_created(conn, payment, actor)
    received = payment.received + match.applied
    if received >= payment.amount:
        current = await locked(conn, payment.payment_id)
        await apply_report(ctx, conn, current, Report(PaymentState.COMPLETED), None, actor)
        await payment_store.update_payment(conn, payment.payment_id, received=received)
        return
    await payment_store.update_payment(conn, payment.payment_id, received=received)
    await audit_moved(conn, payment, {"received": received}, actor, "payment.received")
    if await payment_store.amount_due(conn, invoice) <= 0:
        await move_invoice(conn, invoice.invoice_id, InvoiceStatus.PAID, actor=actor)


async def _credit_overpayment(
    conn: AsyncConnection, tenant_id: str, credit: BankCredit, overpaid: Decimal, actor: str
) -> None:
    tenant = await pricing_store.lock_tenant(conn, tenant_id)
    if tenant is None or Currency.of(tenant.currency) != credit.currency:
        return  # kept on the bank credit row (overpaid) for finance to settle by hand
    ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
    amount = Money.from_major(overpaid, credit.currency).rounded().minor_units
    grant = Grant(f"overpayment-{credit.entry_id}"[:64], datetime.now(UTC), amount, GrantKind.PREPAID)
    await record_entries(conn, ledger, [grant], actor)
