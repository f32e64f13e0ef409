"""Wire transfers: a checksummed reference per invoice, the payer's instructions, and the gateway.

The reference is an ISO 11649 structured creditor reference ("RF" + two ISO 7064 mod 97-10
check digits + the invoice number's letters and digits, `RF47ENIS2024000123`). It is derived
from the invoice number, which is unique per issuer and year and final once an invoice is
(design.md: gapless numbering), so the same invoice always gets the same reference and two
invoices never share one. The check digits let the bank-statement reader tell a mistyped
reference from a real one.

A wire charge moves no money: it records what is expected (`WireLedger`) and hands the payer the
instructions. Its status comes from bank statements (`payments.bank_statements` →
`payments.matching` → `WireLedger.record_payment`). A refund is an outgoing transfer finance
makes from the bank, so `refund` raises `OperationNotSupported`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from stdnum import bic, iban, iso11649
from stdnum.iso7064 import mod_97_10

from payments.amounts import format_major
from payments.errors import IdempotencyConflict, OperationNotSupported, PaymentNotFound
from payments.gateway import ChargeRequest, ChargeResult, PaymentStatus, RefundRequest, RefundResult
from payments.matching import MatchKind, OpenInvoice, PaymentMatch
from pricing.money import ARITHMETIC, Currency


def wire_reference(invoice_number: str) -> str:
    """The RF creditor reference of an invoice number, compact (`RF47ENIS2024000123`)."""
    body = re.sub(r"[^0-9A-Z]", "", invoice_number.upper())
    if not 1 <= len(body) <= 21:
        raise ValueError(f"invoice number {invoice_number!r} does not fit an RF reference (1-21 characters)")
    # ISO 11649: the check digits make "<body>RF<check>" congruent to 1 mod 97.
    return iso11649.validate(f"RF{mod_97_10.calc_check_digits(body + 'RF')}{body}")


@dataclass(frozen=True, slots=True)
class BankAccount:
    """Where customers send transfers; IBAN and BIC are checked (python-stdnum) on creation."""

    holder: str
    iban: str
    bic: str
    bank_name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "iban", iban.validate(self.iban))
        object.__setattr__(self, "bic", bic.validate(self.bic))


def payment_instructions(
    account: BankAccount, invoice_number: str, amount: Decimal, currency: Currency, reference: str
) -> str:
    """The text shown on the invoice page and e-mail for paying by bank transfer."""
    return "\n".join(
        [
            f"Please pay invoice {invoice_number} by bank transfer:",
            f"  Amount:       {format_major(amount, currency)} {currency.code.upper()}",
            f"  Beneficiary:  {account.holder}",
            f"  IBAN:         {iban.format(account.iban)}",
            f"  BIC:          {account.bic}",
            f"  Bank:         {account.bank_name}",
            f"  Reference:    {iso11649.format(reference)}",
            "Quote the reference exactly as shown, in the creditor reference field if your bank has one,",
            "so that your payment is matched to this invoice automatically.",
        ]
    )


@dataclass(frozen=True, slots=True)
class ExpectedWire:
    invoice_id: str
    invoice_number: str
    amount: Decimal
    currency: Currency


class WireLedger(Protocol):
    """What the wire gateway remembers; PostgreSQL in the service, memory in tests and the demo."""

    def expect(self, reference: str, wire: ExpectedWire) -> ExpectedWire: ...

    def expected(self, reference: str) -> ExpectedWire | None: ...

    def received(self, reference: str) -> Decimal: ...


class InMemoryWireLedger:
    def __init__(self) -> None:
        self._expected: dict[str, ExpectedWire] = {}
        self._received: dict[str, Decimal] = {}

    def expect(self, reference: str, wire: ExpectedWire) -> ExpectedWire:
        """Record an expected transfer; the same one again is a no-op and returns the first."""
        return self._expected.setdefault(reference, wire)

    def expected(self, reference: str) -> ExpectedWire | None:
        return self._expected.get(reference)

    def received(self, reference: str) -> Decimal:
        return self._received.get(reference, Decimal(0))

    def open_invoices(self) -> list[OpenInvoice]:
        """What is still due, in the shape `match_payments` takes."""
        return [
            OpenInvoice(wire.invoice_id, wire.invoice_number, reference, due, wire.currency)
            for reference, wire in self._expected.items()
            if (due := ARITHMETIC.subtract(wire.amount, self.received(reference))) > 0
        ]

    def record_payment(self, match: PaymentMatch) -> None:
        """Apply a matched credit (its `applied` part; an over-payment's excess is a credit note)."""
        if match.kind in (MatchKind.UNMATCHED, MatchKind.DUPLICATE) or match.invoice_id is None:
            return
        reference = next(r for r, wire in self._expected.items() if wire.invoice_id == match.invoice_id)
        self._received[reference] = ARITHMETIC.add(self.received(reference), match.applied)


class WireGateway:
    """The `wire` payment method."""

    name = "wire"

    def __init__(self, account: BankAccount, ledger: WireLedger) -> None:
        self._account = account
        self._ledger = ledger

    def charge(self, request: ChargeRequest) -> ChargeResult:
        # The reference itself is the idempotency: one invoice, one reference, one expectation.
        reference = wire_reference(request.invoice_number)
        wanted = ExpectedWire(request.invoice_id, request.invoice_number, request.amount, request.currency)
        recorded = self._ledger.expect(reference, wanted)
        if recorded != wanted:
            raise IdempotencyConflict(f"invoice {request.invoice_number} already expects {recorded.amount}")
        result = self.status(reference)
        text = payment_instructions(
            self._account, request.invoice_number, request.amount, request.currency, reference
        )
        return ChargeResult(
            provider=self.name,
            transaction_id=reference,
            status=result.status,
            amount=request.amount,
            currency=request.currency,
            instructions=text,
        )

    def status(self, transaction_id: str) -> ChargeResult:
        wire = self._ledger.expected(transaction_id)
        if wire is None:
            raise PaymentNotFound(f"no wire transfer expected with reference {transaction_id}")
        settled = self._ledger.received(transaction_id) >= wire.amount
        return ChargeResult(
            provider=self.name,
            transaction_id=transaction_id,
            status=PaymentStatus.COMPLETED if settled else PaymentStatus.PENDING,
            amount=wire.amount,
            currency=wire.currency,
        )

    def refund(self, request: RefundRequest) -> RefundResult:
        raise OperationNotSupported("a wire refund is an outgoing bank transfer made by finance")
