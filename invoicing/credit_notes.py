"""Credit notes: the only way to correct a finalized invoice, which itself never changes.

A credit note takes back part or all of an invoice's net amount, with the tax on it at the
invoice's own rate (the rate of the supply being corrected, not today's). What an invoice's
credit notes take back together never exceeds the invoice: the last note that brings the net
credited to the invoice's subtotal takes exactly the tax still uncredited, so rounding never
leaves a cent of tax behind or credits one too many. Pure; the store numbers and keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pricing.errors import InvalidField
from pricing.money import ARITHMETIC, Money


@dataclass(frozen=True, slots=True)
class Creditable:
    """An invoice's amounts, and what its earlier credit notes took back."""

    subtotal: Money  # after credits, before tax
    tax: Money
    tax_rate: Decimal  # percent
    credited_subtotal: Money
    credited_tax: Money

    @property
    def remaining(self) -> Money:
        return self.subtotal - self.credited_subtotal


@dataclass(frozen=True, slots=True)
class CreditNoteAmounts:
    subtotal: Money
    tax: Money

    @property
    def total(self) -> Money:
        return self.subtotal + self.tax


def credit_note_amounts(invoice: Creditable, amount: Money | None) -> CreditNoteAmounts:
    """The note for `amount` net (None: everything not yet credited). Raises `InvalidField`
    naming `amount` when it is not positive, not in whole minor units or more than remains."""
    remaining = invoice.remaining
    net = remaining if amount is None else amount
    if net.currency != invoice.subtotal.currency:
        raise InvalidField(
            "amount", f"must be in the invoice's currency, {invoice.subtotal.currency.code.upper()}"
        )
    if net.minor_units != net.rounded().minor_units:
        raise InvalidField("amount", f"must be whole minor units of {net.currency}")
    if net.minor_units <= 0:
        raise InvalidField("amount", "nothing left to credit" if amount is None else "must be positive")
    if remaining < net:
        raise InvalidField("amount", f"exceeds the {remaining.format_major()} not yet credited")
    if net == remaining:
        tax = invoice.tax - invoice.credited_tax
    else:
        tax = net.times(ARITHMETIC.divide(invoice.tax_rate, Decimal(100))).rounded()
        tax = min(tax, invoice.tax - invoice.credited_tax, key=lambda money: money.minor_units)
    return CreditNoteAmounts(net, tax)
