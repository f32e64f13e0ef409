"""Payments over PostgreSQL and the providers: take a payment for an invoice, refund it, follow
the providers' webhooks, retry failed payments on the dunning schedule, and apply bank credits.

Every provider call carries an idempotency key derived from our own row (`<payment id>:<attempt>`,
`refund:<refund id>`), and the row is written before the call, so a request retried after a
timeout or a crash repeats the same call and the provider charges once. Provider SDKs block, so
their calls run in a worker thread. A payment's status only moves forward (payments/lifecycle.py);
the invoice follows it: paid when nothing is due, uncollectible after the last dunning retry.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import audit_store, credit_note_store, invoice_store, metrics, payment_store, pricing_store
from infra.field_encryption import FieldCipher
from infra.sealed_columns import CUSTOMER_REF, DEBTOR_REF, METHOD_REF
from infra.settings import Settings
from payments.amounts import from_minor_units
from payments.bank_statements import BankCredit
from payments.dunning import DunningSchedule, reminder
from payments.errors import OperationNotSupported, PaymentDeclined, PaymentError, PaymentNotFound
from payments.gateway import ChargeRequest, ChargeResult, PaymentStatus, RefundRequest
from payments.lifecycle import COLLECTED, PaymentState, advance, after_refunds
from payments.matching import OpenInvoice, match_payments
from payments.providers import Providers
from payments.stripe_gateway import stripe_exponent
from payments.webhooks import WebhookEvent
from payments.wire import wire_reference
from pricing.credits import Grant, GrantKind
from pricing.errors import InvalidField
from pricing.money import Currency, Money

log = logging.getLogger(__name__)
METHODS = ("stripe", "paypal", "wire")
PAYABLE = ("finalized", "uncollectible")
# A charge whose outcome is still unrecorded this long after it began was cut off by a crash: far
# longer than a provider call with the SDKs' own retries, far shorter than Stripe keeps a key (24 h).
UNRECORDED_AFTER = timedelta(minutes=10)


class NotPayable(ValueError):
    """The invoice cannot take a payment now: a draft, void, paid, or nothing is due."""


class PaymentInProgress(ValueError):
    """Another payment of the invoice is still pending."""


class IdempotencyKeyReused(ValueError):
    """The Idempotency-Key was used before for another invoice or method."""


class NoPaymentMethod(ValueError):
    """The tenant has not attached a method at that provider."""


@dataclass(frozen=True)
class Report:
    """What a provider said about a payment: a status, and what came with it."""

    status: PaymentState | None
    transaction_id: str | None = None
    approval_url: str | None = None
    instructions: str | None = None
    failure_code: str | None = None
    refunded: Decimal | None = None  # the total refunded so far, when the provider says it


@dataclass
class Payments:
    engine: AsyncEngine
    providers: Providers
    cipher: FieldCipher
    settings: Settings
    schedule: DunningSchedule = field(init=False)

    def __post_init__(self) -> None:
        self.schedule = DunningSchedule.parse(self.settings.dunning_schedule)

    # --- payment methods -----------------------------------------------------------------------

    async def attach_method(
        self, tenant_id: str, provider: str, method_id: str, customer_id: str | None
    ) -> None:
        """Keep a tenant's provider ids (never card data), encrypted."""
        customer = None if customer_id is None else self.cipher.encrypt(CUSTOMER_REF.field, customer_id)
        async with self.engine.begin() as conn:
            if await pricing_store.lock_tenant(conn, tenant_id) is None:
                raise PaymentNotFound(f"no tenant {tenant_id}")
            method = self.cipher.encrypt(METHOD_REF.field, method_id)
            await payment_store.save_method(conn, tenant_id, provider, customer, method)

    # --- taking a payment ----------------------------------------------------------------------

    async def create(
        self,
        invoice_id: uuid.UUID,
        method: str,
        idempotency_key: str,
        actor: str,
        check_tenant: Callable[[str], None],
    ):
        """(payment, created) for this Idempotency-Key: made and charged once, returned as it is after."""
        async with self.engine.begin() as conn:
            payment = await payment_store.find_by_key(conn, idempotency_key)
            created = payment is None
            if created:
                payment = await self._new_payment(
                    conn, invoice_id, method, idempotency_key, actor, check_tenant
                )
            check_tenant(payment.tenant_id)  # first: another tenant learns nothing about the key
            if (payment.invoice_id, payment.method) != (invoice_id, method):
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {idempotency_key!r} was used for another payment"
                )
        if payment.status == PaymentState.PENDING and payment.attempts == 0:
            # Never charged, or the charge's outcome was never recorded (a crash, a timeout): the
            # same provider key again, so the provider charges at most once.
            return await self._attempt(payment, 1, actor), created
        return payment, created

    async def _new_payment(self, conn, invoice_id, method, idempotency_key, actor, check_tenant):
        invoice = await credit_note_store.lock_invoice(conn, invoice_id)
        if invoice is None:
            raise invoice_store.InvoiceNotFound(str(invoice_id))
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
        if method == "stripe" and await payment_store.find_method(conn, invoice.tenant_id, "stripe") is None:
            raise NoPaymentMethod("attach a Stripe payment method first: POST /tenants/{id}/payment-methods")
        created = await payment_store.insert_payment(
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
        if created is None:  # a concurrent twin with the same key made it
            return await payment_store.find_by_key(conn, idempotency_key)
        await _audit_created(conn, created, actor)
        return created

    async def _attempt(self, payment, attempt: int, actor: str):
        """Charge `payment` (attempt number `attempt`) and record what the provider said."""
        async with self.engine.connect() as conn:
            invoice = await invoice_store.find(conn, payment.invoice_id)
            saved = await payment_store.find_method(conn, payment.tenant_id, payment.method)
        request = ChargeRequest(
            invoice_id=str(payment.invoice_id),
            invoice_number=invoice.number,
            amount=Decimal(payment.amount),
            currency=Currency.of(payment.currency),
            idempotency_key=f"{payment.payment_id}:{attempt}",
            customer_id=None
            if saved is None or saved.customer_ref is None
            else self.cipher.decrypt(CUSTOMER_REF.field, saved.customer_ref),
            payment_method_id=None
            if saved is None
            else self.cipher.decrypt(METHOD_REF.field, saved.method_ref),
        )
        try:
            report = await asyncio.to_thread(self._charge, payment.method, request)
        except PaymentDeclined as declined:
            report = Report(PaymentState.FAILED, declined.transaction_id, failure_code=declined.decline_code)
        except Exception as error:
            # The provider's answer is unknown (down, timed out, refused the request): the payment
            # fails and dunning tries again with a new key; it never stays pending forever.
            code = type(error).__name__
            failed = Report(PaymentState.FAILED, failure_code=code)
            await self.settle(payment.payment_id, failed, attempt, actor=actor)
            raise
        return await self.settle(payment.payment_id, report, attempt, actor=actor)

    def _charge(self, method: str, request: ChargeRequest) -> Report:
        if method == "stripe" and not request.payment_method_id:
            raise NoPaymentMethod("attach a Stripe payment method first: POST /tenants/{id}/payment-methods")
        return _report(self.providers.gateway(method).charge(request))

    async def settle(self, payment_id: uuid.UUID, report: Report, attempt: int | None = None, *, actor: str):
        """Apply a provider's report to the payment and its invoice, in one transaction; `actor`
        is who brought the report (the caller charging, a webhook, dunning), for the audit log."""
        async with self.engine.begin() as conn:
            payment = await payment_store.find(conn, payment_id, for_update=True)
            await self._apply(conn, payment, report, attempt, actor)
            return await payment_store.find(conn, payment_id)

    async def _apply(self, conn, payment, report: Report, attempt: int | None, actor: str) -> str:
        """Move the (locked) payment forward as far as `report` allows, audited when its status
        moves; what happened, in words."""
        current = PaymentState(payment.status)
        values: dict[str, object] = {}
        newer = attempt is not None and attempt >= payment.attempts  # a retry makes a new charge
        for name in ("transaction_id", "approval_url", "instructions"):
            if getattr(report, name) and (newer or not getattr(payment, name)):
                values[name] = getattr(report, name)
        if attempt is not None:
            values["attempts"] = max(payment.attempts, attempt)
        new = None if report.status is None else advance(current, report.status)
        if report.refunded is not None and current in COLLECTED and report.refunded > payment.refunded:
            values["refunded"] = report.refunded
            new = after_refunds(Decimal(payment.received), report.refunded)
        now = datetime.now(UTC)
        if new == PaymentState.COMPLETED:
            values |= {"received": payment.amount, "failure_code": None, "next_retry_at": None}
        if new == PaymentState.FAILED:
            failures = attempt or payment.attempts or 1
            retry_at = self.schedule.next_retry(failures, now)
            values |= {"failure_code": report.failure_code, "next_retry_at": retry_at}
        if new is not None:
            values["status"] = new.value
            metrics.payment_outcomes.inc(tags={"method": payment.method, "state": new.value})
        if values:
            await payment_store.update_payment(conn, payment.payment_id, **values)
        if new is not None:
            await _audit_moved(conn, payment, values, actor)
        if attempt is not None and (new is not None or report.status == PaymentState.PENDING):
            await self._record_attempt(
                conn, payment, attempt, new or current, report.failure_code, values, now
            )
        await self._follow_invoice(conn, payment, new, values.get("next_retry_at"), actor)
        return (
            "ignored: the payment has moved past that"
            if new is None and not values
            else f"now {new or current}"
        )

    async def _record_attempt(self, conn, payment, attempt, state, failure_code, values, now) -> None:
        note = None
        if state == PaymentState.FAILED:
            invoice = await invoice_store.find(conn, payment.invoice_id)
            amount = Money.from_major(Decimal(payment.amount), Currency.of(payment.currency))
            note = reminder(invoice.number, str(amount), failure_code, values.get("next_retry_at"))
        await payment_store.add_attempt(
            conn,
            payment.payment_id,
            attempt,
            at=now,
            outcome=state.value,
            failure_code=failure_code,
            reminder=note,
        )

    async def _follow_invoice(self, conn, payment, new: PaymentState | None, retry_at, actor: str) -> None:
        invoice = await credit_note_store.lock_invoice(conn, payment.invoice_id)
        settled = new == PaymentState.COMPLETED and invoice.status in PAYABLE
        if settled and await payment_store.amount_due(conn, invoice) <= 0:
            await invoice_store.set_status(conn, invoice.invoice_id, "paid", actor=actor)
        if new == PaymentState.FAILED and retry_at is None and invoice.status == "finalized":
            await invoice_store.set_status(conn, invoice.invoice_id, "uncollectible", actor=actor)

    # --- refunds ---------------------------------------------------------------------------------

    async def refund(
        self,
        payment_id: uuid.UUID,
        amount: Decimal | None,
        idempotency_key: str,
        reason: str | None,
        actor: str,
    ):
        """Give back part (`amount`) or all of a collected payment; once per Idempotency-Key."""
        async with self.engine.begin() as conn:
            existing = await payment_store.find_refund_by_key(conn, idempotency_key)
            if existing is not None:
                if existing.payment_id != payment_id:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency_key!r} was used for another refund"
                    )
                return existing
            payment = await payment_store.find(conn, payment_id, for_update=True)
            if payment is None:
                raise PaymentNotFound(str(payment_id))
            if PaymentState(payment.status) not in COLLECTED:
                raise NotPayable(
                    f"payment {payment_id} is {payment.status}; only collected payments are refunded"
                )
            # Refunds still in flight count: two at once must not both take the same remainder.
            left = Decimal(payment.received) - await self._refunds_total(conn, payment_id)
            wanted = left if amount is None else amount
            if wanted <= 0 or wanted > left:
                raise InvalidField("amount", f"must be more than 0 and at most the {left} not yet refunded")
            refund = await payment_store.insert_refund(
                conn,
                refund_id=uuid.uuid4(),
                payment_id=payment_id,
                idempotency_key=idempotency_key,
                amount=wanted,
                status="pending",
                reason=reason,
                created_by=actor,
            )
            await _audit_refund(conn, refund, payment, actor, None, {"refundable_after": left - wanted})
        request = RefundRequest(
            transaction_id=payment.transaction_id,
            currency=Currency.of(payment.currency),
            idempotency_key=f"refund:{refund.refund_id}",
            amount=wanted,
            reason=reason,
        )
        try:
            result = await asyncio.to_thread(self.providers.gateway(payment.method).refund, request)
            status, provider_id = result.status.value, result.refund_id
        except OperationNotSupported:  # a wire refund is a transfer finance makes by hand
            status, provider_id = PaymentStatus.COMPLETED.value, None
        except PaymentError:
            async with self.engine.begin() as conn:
                await payment_store.update_refund(conn, refund.refund_id, status=PaymentStatus.FAILED.value)
                await _audit_refund(conn, refund, payment, actor, "pending", {"status": "failed"})
            raise
        async with self.engine.begin() as conn:
            locked = await payment_store.find(conn, payment_id, for_update=True)
            await payment_store.update_refund(
                conn, refund.refund_id, status=status, provider_refund_id=provider_id
            )
            if status != "pending":
                await _audit_refund(conn, refund, payment, actor, "pending", {"status": status})
            # The total of the refunds that stand, never added twice to what a webhook reported.
            refunded = await self._refunds_total(conn, payment_id)
            await self._apply(conn, locked, Report(None, refunded=refunded), None, actor)
            return await payment_store.find_refund_by_key(conn, idempotency_key)

    @staticmethod
    async def _refunds_total(conn, payment_id: uuid.UUID) -> Decimal:
        refunds = await payment_store.refunds_of(conn, payment_id)
        return sum((Decimal(r.amount) for r in refunds if r.status != PaymentStatus.FAILED.value), Decimal(0))

    # --- webhooks --------------------------------------------------------------------------------

    async def handle_event(self, event: WebhookEvent) -> str:
        """Apply a verified webhook event once; a replay is recognised by its id and ignored, except
        an approval whose payment is still pending: the process that recorded it may have died
        before it captured (issue 7), and the capture's own key lets PayPal capture only once."""
        async with self.engine.begin() as conn:
            fresh = await payment_store.record_event(
                conn, event.provider, event.event_id, event.type, event.created
            )
            method, transaction_id, report = _reading(event)
            payment = None
            if transaction_id is not None:
                payment = await payment_store.find_by_transaction(
                    conn, method, transaction_id, for_update=True
                )
            uncaptured = (
                report == "capture" and payment is not None and payment.status == PaymentState.PENDING
            )
            if not fresh and not uncaptured:
                return "duplicate: already processed"
            if payment is None:
                outcome = "no payment of ours" if transaction_id else f"not used: {event.type}"
            elif report == "capture":
                outcome = "approved: capturing"
            else:
                actor = audit_store.webhook_actor(event.provider)
                outcome = await self._apply(conn, payment, report, None, actor)
            await payment_store.event_outcome(
                conn, event.provider, event.event_id, outcome, None if payment is None else payment.payment_id
            )
        if payment is not None and report == "capture":
            outcome = await self._capture(event, payment, transaction_id)
        return outcome

    async def _capture(self, event: WebhookEvent, payment, order_id: str) -> str:
        """Capture an order its payer approved. If PayPal cannot be reached the event is
        forgotten, so PayPal's redelivery captures it; a declined capture fails the payment."""
        actor = audit_store.webhook_actor(event.provider)
        try:
            result = await asyncio.to_thread(
                self.providers.paypal.capture, order_id, f"{payment.payment_id}:capture"
            )
        except PaymentDeclined as declined:
            report = Report(PaymentState.FAILED, failure_code=declined.decline_code)
            await self.settle(payment.payment_id, report, payment.attempts, actor=actor)
            return "approved; the capture was declined"
        except PaymentError:
            async with self.engine.begin() as conn:
                await payment_store.forget_event(conn, event.provider, event.event_id)
            raise
        await self.settle(payment.payment_id, _report(result), actor=actor)
        return "approved and captured"

    # --- dunning ---------------------------------------------------------------------------------

    async def retry_due(self, now: datetime, limit: int = 50) -> int:
        """Retry the failed payments whose time has come, one at a time, after finishing charges cut
        off by a crash; how many were retried or finished."""
        retried = await self._finish_unrecorded(now, limit)
        for _ in range(limit):
            payment = await self._claim_retry(now)
            if payment is None:
                break
            try:
                await self._attempt(payment, payment.attempts, audit_store.DUNNING)
            except Exception:
                log.warning("dunning retry of payment %s failed", payment.payment_id, exc_info=True)
            retried += 1
        return retried

    async def _finish_unrecorded(self, now: datetime, limit: int) -> int:
        """Charge again, under the same provider key, the payments whose process died before it
        recorded what the provider did (issue 7): the provider replays its answer, so a charge
        that went through is recorded, not made twice, and one that never arrived is made now."""
        async with self.engine.begin() as conn:
            cut_off = await payment_store.unrecorded_charges(conn, now - UNRECORDED_AFTER, limit)
            for payment in cut_off:  # touched, so another replica does not take it as well
                await payment_store.update_payment(conn, payment.payment_id)
        for payment in cut_off:
            try:
                await self._attempt(payment, max(payment.attempts, 1), audit_store.DUNNING)
            except Exception:
                log.warning("finishing payment %s failed", payment.payment_id, exc_info=True)
        return len(cut_off)

    async def _claim_retry(self, now: datetime):
        """The next failed payment due for a retry, now pending on its next attempt, or None.
        Its invoice is checked again first: if it was paid another way, voided or credited
        meanwhile, the retry is dropped; otherwise it charges what is due now."""
        async with self.engine.begin() as conn:
            while True:
                [payment] = await payment_store.due_for_retry(conn, now, limit=1) or [None]
                if payment is None:
                    return None
                invoice = await credit_note_store.lock_invoice(conn, payment.invoice_id)
                due = await payment_store.amount_due(conn, invoice)
                if invoice.status in PAYABLE and due > 0:
                    break
                await payment_store.update_payment(conn, payment.payment_id, next_retry_at=None)
            retry = {"status": PaymentState.PENDING.value, "attempts": payment.attempts + 1, "amount": due}
            await payment_store.update_payment(conn, payment.payment_id, next_retry_at=None, **retry)
            await _audit_moved(conn, payment, retry, audit_store.DUNNING)
            return await payment_store.find(conn, payment.payment_id)

    # --- bank statements -------------------------------------------------------------------------

    async def reconcile(self, credits: list[BankCredit], actor: str) -> list[dict[str, object]]:
        """Apply a statement's credits to open invoices by reference; each bank entry once. An
        overpayment becomes a prepaid credit on the tenant's ledger."""
        async with self.engine.begin() as conn:
            await payment_store.lock_reconciliation(conn)
            known = await payment_store.known_bank_entries(conn, [c.entry_id for c in credits])
            fresh = [credit for credit in credits if credit.entry_id not in known]
            invoices = {row.invoice_id: row for row in await payment_store.open_invoices(conn)}
            open_invoices = [
                OpenInvoice(
                    row.invoice_id,
                    row.number,
                    wire_reference(row.number),
                    max(
                        Decimal(0), await payment_store.amount_due(conn, row)
                    ),  # a credited-away invoice owes 0
                    Currency.of(row.currency),
                )
                for row in invoices.values()
            ]
            results = [{"entry_id": entry_id, "match": "duplicate"} for entry_id in sorted(known)]
            for match in match_payments(fresh, open_invoices):
                await self._book(conn, match, invoices.get(match.invoice_id), actor)
                results.append(
                    {
                        "entry_id": match.credit.entry_id,
                        "match": match.kind.value,
                        "invoice_id": None if match.invoice_id is None else str(match.invoice_id),
                        "applied": format(match.applied, "f"),
                        "overpaid": format(match.overpaid, "f"),
                        "remaining_due": None
                        if match.remaining_due is None
                        else format(match.remaining_due, "f"),
                    }
                )
        return results

    async def _book(self, conn, match, invoice, actor: str) -> None:
        credit = match.credit
        debtor = self.cipher.encrypt(DEBTOR_REF.field, credit.debtor) if credit.debtor else None
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
            await self._credit_overpayment(conn, invoice.tenant_id, credit, match.overpaid, actor)
        if match.applied <= 0:
            return
        payment = next(
            (
                p
                for p in await payment_store.of_invoice(conn, invoice.invoice_id)
                if p.method == "wire" and p.status == PaymentState.PENDING
            ),
            None,
        )
        if payment is None:
            payment = await payment_store.insert_payment(
                conn,
                payment_id=uuid.uuid4(),
                invoice_id=invoice.invoice_id,
                tenant_id=invoice.tenant_id,
                method="wire",
                idempotency_key=f"bank:{credit.entry_id}",
                status=PaymentState.PENDING.value,
                amount=match.applied,
                currency=invoice.currency,
                transaction_id=wire_reference(invoice.number),
                created_by=actor,
            )
            await _audit_created(conn, payment, actor)
        received = Decimal(payment.received) + match.applied
        if received >= Decimal(payment.amount):
            locked = await payment_store.find(conn, payment.payment_id, for_update=True)
            await self._apply(conn, locked, Report(PaymentState.COMPLETED), None, actor)
            await payment_store.update_payment(conn, payment.payment_id, received=received)
            return
        await payment_store.update_payment(conn, payment.payment_id, received=received)
        await _audit_moved(conn, payment, {"received": received}, actor, "payment.received")
        if await payment_store.amount_due(conn, invoice) <= 0:
            await invoice_store.set_status(conn, invoice.invoice_id, "paid", actor=actor)

    async def _credit_overpayment(
        self, conn, tenant_id: str, credit: BankCredit, overpaid: Decimal, actor: str
    ) -> None:
        tenant = await pricing_store.lock_tenant(conn, tenant_id)
        if tenant is None or Currency.of(tenant.currency) != credit.currency:
            return  # kept on the bank credit row (overpaid) for finance to settle by hand
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
        amount = Money.from_major(overpaid, credit.currency).rounded().minor_units
        grant = Grant(f"overpayment-{credit.entry_id}"[:64], datetime.now(UTC), amount, GrantKind.PREPAID)
        await pricing_store.append_ledger_entry(conn, ledger, grant, actor)


# --- audit log -------------------------------------------------------------------------------

_AUDITED = ("status", "amount", "received", "refunded", "failure_code", "attempts")


def _payment_state(payment, changes: dict[str, object] | None = None) -> dict[str, object]:
    state = {name: getattr(payment, name) for name in _AUDITED}
    return (
        state | {k: v for k, v in (changes or {}).items() if k in _AUDITED} | {"currency": payment.currency}
    )


async def _audit_created(conn, payment, actor: str) -> None:
    after = _payment_state(payment) | {"method": payment.method, "invoice_id": payment.invoice_id}
    await audit_store.record(
        conn, actor, "payment.created", "payment", payment.payment_id, payment.tenant_id, None, after
    )


async def _audit_moved(
    conn, payment, changes: dict[str, object], actor: str, action: str | None = None
) -> None:
    """A payment row `payment` (as it was) changed by `changes`: `payment.<new status>` unless
    `action` says otherwise."""
    after = _payment_state(payment, changes)
    await audit_store.record(
        conn,
        actor,
        action or f"payment.{after['status']}",
        "payment",
        payment.payment_id,
        payment.tenant_id,
        _payment_state(payment),
        after,
    )


async def _audit_refund(conn, refund, payment, actor: str, before: str | None, after: dict) -> None:
    """`refund.requested` (before None) or `refund.<status>` as the provider answers."""
    state = {"amount": refund.amount, "currency": payment.currency, "payment_id": payment.payment_id}
    action = "refund.requested" if before is None else f"refund.{after['status']}"
    await audit_store.record(
        conn,
        actor,
        action,
        "refund",
        refund.refund_id,
        payment.tenant_id,
        None if before is None else {"status": before, **state},
        {"status": "pending", "reason": refund.reason, **state, **after},
    )


def _report(result: ChargeResult) -> Report:
    return Report(
        PaymentState(result.status.value),
        result.transaction_id,
        approval_url=result.approval_url,
        instructions=result.instructions,
        failure_code=result.failure_code,
    )


_STRIPE = {
    "payment_intent.succeeded": PaymentState.COMPLETED,
    "payment_intent.payment_failed": PaymentState.FAILED,
    "payment_intent.processing": PaymentState.PENDING,
}
_PAYPAL = {
    "PAYMENT.CAPTURE.COMPLETED": PaymentState.COMPLETED,
    "PAYMENT.CAPTURE.DENIED": PaymentState.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentState.FAILED,
}


def _reading(event: WebhookEvent) -> tuple[str, str | None, Report | str]:
    """(method, our transaction id, the report or "capture") of a provider's event."""
    if event.provider == "stripe":
        intent = event.related_ids.get("payment_intent") or (
            event.object_id if event.object_type == "payment_intent" else None
        )
        obj = event.payload.get("data", {}).get("object", {})
        if event.type == "charge.refunded":
            currency = Currency.of(obj["currency"])
            refunded = from_minor_units(int(obj["amount_refunded"]), currency, stripe_exponent(currency))
            return "stripe", intent, Report(None, refunded=refunded)
        error = obj.get("last_payment_error") or {}
        code = error.get("decline_code") or error.get("code")
        return "stripe", intent, Report(_STRIPE.get(event.type), failure_code=code)
    order = event.related_ids.get("order_id") or (
        event.object_id if event.object_type == "checkout-order" else None
    )
    if event.type == "CHECKOUT.ORDER.APPROVED":
        return "paypal", order, "capture"
    return "paypal", order, Report(_PAYPAL.get(event.type))
