"""Wire transfers: a checksummed reference per invoice, the payer's instructions, and the gateway.

The reference is an ISO 11649 structured creditor reference ("RF" + two ISO 7064 mod 97-10
check digits + the invoice number's letters and digits, `RF47ENIS2024000123`). It is derived
from the invoice number, which is unique per issuer and year and final once an invoice is
(design.md: gapless numbering), so the same invoice always gets the same reference and two
invoices never share one. The check digits let the bank-statement reader tell a mistyped
reference from a real one.

A wire charge moves no money: it hands the payer the instructions. Its status comes from bank
statements (`payments.bank_statements` → `payments.matching`, applied by `payments.reconciliation`).
A refund is an outgoing transfer finance makes from the bank, so `refund` raises
`OperationNotSupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from stdnum import bic, iban, iso11649

# Defined with the invoice it names, since invoicing does not import payments.
from invoicing.references import wire_reference
from payments.amounts import format_major
from payments.errors import OperationNotSupported
from payments.gateway import (
    ChargeRequest,
    ChargeResult,
    PaymentProvider,
    PaymentStatus,
    RefundRequest,
    RefundResult,
    SavedMethod,
)
from pricing.money import Currency

if TYPE_CHECKING:
    from infra.settings import Settings


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


class WireGateway:
    """The `wire` payment method. It keeps nothing: the service's payment row is the expected
    transfer, and bank statements settle it (`payments.bank_statements`, `payments.matching`)."""

    name = "wire"

    def __init__(self, account: BankAccount) -> None:
        self._account = account

    def charge(self, request: ChargeRequest) -> ChargeResult:
        # The reference itself is the idempotency: one invoice, one reference.
        reference = wire_reference(request.invoice_number)
        text = payment_instructions(
            self._account, request.invoice_number, request.amount, request.currency, reference
        )
        return ChargeResult(
            provider=self.name,
            transaction_id=reference,
            status=PaymentStatus.PENDING,
            amount=request.amount,
            currency=request.currency,
            instructions=text,
        )

    def status(self, transaction_id: str) -> ChargeResult:
        raise OperationNotSupported("a wire transfer's status comes from the bank's statements")

    def refund(self, request: RefundRequest) -> RefundResult:
        raise OperationNotSupported("a wire refund is an outgoing bank transfer made by finance")


def _gateway(settings: Settings) -> WireGateway:
    s = settings
    return WireGateway(BankAccount(s.wire_holder, s.wire_iban, s.wire_bic, s.wire_bank))


WIRE = PaymentProvider(
    name=WireGateway.name,
    display_name="Bank transfer",
    saved_method=SavedMethod.NONE,
    gateway=_gateway,
    charge_moves_money=False,  # bank statements settle it (payments.reconciliation)
)
