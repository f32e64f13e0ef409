"""Invoice composition: a tenant's rating for a period in, the invoice the customer reads out.

Pure: no Ray, HTTP, Redis or SQL. `compose_invoice` takes a `Rating` (amounts unrounded, in the
catalog's currency) and returns an `InvoiceDraft` plus the credit ledger with the invoice's
debits, for the caller to persist together. The rules (design.md §4, §7), in order:

1. Lines. Each rated line's UNROUNDED amount is converted to the billing currency with
   `pricing.fx.convert` (when the currencies differ) and then rounded once, ROUND_HALF_UP, to
   the billing currency's minor unit. Converting a rounded USD cent would round twice.
   Negative lines (contract discounts) round half away from zero, as `Decimal`'s ROUND_HALF_UP
   does. Lines that round to zero stay on the invoice: a tenant sees the usage it was not
   charged for (a lite quota, a few executions) rather than wondering where it went.
2. `subtotal_before_credits` is the sum of the rounded lines.
3. Credits are drawn from the ledger in its documented consumption order
   (`CreditLedger.consume`), never more than `subtotal_before_credits` and never below zero.
   A ledger kept in another currency than the invoice's is not converted: no credit is applied
   and `credits_note` says why, so the invoice still goes out and finance can act.
4. `subtotal` = `subtotal_before_credits` - `credits_applied`: "before tax and after credits"
   (design.md §4).
5. Tax is computed ONCE PER INVOICE on the rounded `subtotal` after credits, with
   `pricing.tax.tax_for` at the rates in force on `tax_date`; never per line. Prepaid credit
   is treated as a discount on the supply, so VAT is due on what is still owed.
6. `total` = `subtotal` + tax.

`fx_note` prints the rate and its date (`str(FxRate)`, design.md §7), or is None when the
prices are already in the billing currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from pricing.credits import CreditLedger
from pricing.errors import CurrencyMismatch, InvalidField
from pricing.fx import FxRate, convert
from pricing.lines import LineKind, RatedLine
from pricing.meters import Meter
from pricing.money import ARITHMETIC, Currency, Money, exact, plain
from pricing.periods import Period
from pricing.rating import Rating
from pricing.tax import tax_for

# A unit price is informational (the line's `amount` is what is charged, and for tiered or
# spot prices it is an average), so it is shown to this many places past the minor unit.
UNIT_PRICE_EXTRA_DECIMALS = 6


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One printed line; `unit_price` in unrounded minor units, `amount` rounded."""

    kind: LineKind
    meter: Meter | None
    description: str
    period: Period
    quantity: Decimal
    unit: str
    unit_price: Decimal  # minor units of the billing currency per billable unit
    amount: Money  # rounded to the billing currency's minor unit
    # The part of `quantity` a reserved quota covered (lite tier): the invoice prints it as a line
    # of its own, at no charge, so quantity x unit price gives the amount (issue 14, finding 3).
    included_quantity: Decimal = Decimal(0)
    details: tuple[tuple[str, str], ...] = ()  # RatedLine.details: what the description says

    def to_json(self) -> dict[str, object]:
        digits = self.amount.currency.digits
        shown = self.unit_price.scaleb(-digits, context=ARITHMETIC).quantize(
            Decimal(1).scaleb(-(digits + UNIT_PRICE_EXTRA_DECIMALS)),
            rounding=ROUND_HALF_UP,
            context=ARITHMETIC,
        )
        return {
            "description": self.description,
            "quantity": plain(self.quantity),
            "unit_price": plain(shown),
            "amount": self.amount.format_major(),
            "unit": self.unit,
            "kind": self.kind.value,
            "meter": None if self.meter is None else self.meter.value,
            "period": self.period.to_json(),
            "included_quantity": plain(self.included_quantity),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class InvoiceTax:
    """The tax on the invoice's `subtotal`: `rate` in percent, `amount` rounded."""

    rate: Decimal
    amount: Money
    reverse_charge: bool
    note: str


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    """An invoice before it is numbered and stored; every `Money` is in `currency`, rounded."""

    tenant_id: str
    period: Period
    reference: str
    currency: Currency
    lines: tuple[InvoiceLine, ...]
    subtotal_before_credits: Money
    credits_applied: Money
    credits_note: str | None  # why credits were not applied, when they were not
    subtotal: Money  # before tax, after credits (design.md §4)
    tax: InvoiceTax
    total: Money
    fx_note: str | None  # "1 USD = 0.92 EUR (ECB euro reference rate, 2025-03-31)"
    usage: Mapping[str, Decimal]  # meter -> the period's quantity the lines were rated from
    fx: FxRate | None = None  # the rate behind `fx_note`, for invoices worded in other languages
    # The VAT in EUR when a seller in the EU invoices VAT in another currency (art. 230 Directive
    # 2006/112/EC, §16 (6) UStG), converted at `tax_fx` and rounded to the cent.
    tax_fx: FxRate | None = None

    def to_json(self) -> dict[str, object]:
        """Design.md §4's invoice fields, amounts as major-unit decimal strings, plus details."""
        return {
            "reference": self.reference,
            "tenant_id": self.tenant_id,
            "period": self.period.to_json(),
            "currency": self.currency.code,
            "lines": [line.to_json() for line in self.lines],
            "subtotal_before_credits": self.subtotal_before_credits.format_major(),
            "credits_applied": self.credits_applied.format_major(),
            "credits_note": self.credits_note,
            "subtotal": self.subtotal.format_major(),
            "tax": self.tax.amount.format_major(),
            "tax_rate": plain(self.tax.rate),
            "tax_note": self.tax.note,
            "reverse_charge": self.tax.reverse_charge,
            "total": self.total.format_major(),
            "fx": self.fx_note,
            "fx_rate": _rate_json(self.fx),
            "tax_eur": self._tax_eur(),
            "usage": {meter: plain(quantity) for meter, quantity in self.usage.items()},
        }

    def _tax_eur(self) -> dict[str, object] | None:
        if self.tax_fx is None or self.tax.amount.is_zero():
            return None
        return {"amount": convert(self.tax.amount, self.tax_fx).rounded().format_major()} | (
            _rate_json(self.tax_fx) or {}
        )


def _rate_json(fx: FxRate | None) -> dict[str, object] | None:
    """A rate as the invoice prints it: 1 `from` = `rate` `to`, its source and date."""
    if fx is None:
        return None
    return {
        "from": fx.from_currency.code.upper(),
        "to": fx.to_currency.code.upper(),
        "rate": fx.printed_rate(),
        "source": fx.source,
        "date": fx.rate_date.isoformat(),
    }


@exact
def compose_invoice(
    rating: Rating,
    *,
    billing_currency: Currency,
    fx: FxRate | None,
    ledger: CreditLedger,
    at: datetime,
    reference: str,
    seller_country: str,
    buyer_country: str,
    buyer_vat_id: str | None,
    buyer_region: str | None,
    tax_date: date,
    usage: Mapping[str, Decimal],
    adjustments: Sequence[InvoiceLine] = (),
    tax_fx: FxRate | None = None,
) -> tuple[InvoiceDraft, CreditLedger]:
    """The invoice for `rating` in `billing_currency`, and `ledger` with its credit debits.
    `tax_fx` (billing currency -> EUR), when given, adds the VAT in EUR to the document.

    `fx` converts the rating's currency to `billing_currency` (None when they are the same);
    credits are drawn `at` with `reference` on each debit. `usage` is what the rating was made
    from (kept, so late usage can be found later); `adjustments` are already-composed lines in
    `billing_currency` (late usage of earlier periods, invoicing/late_usage.py) added after the
    rated ones, before credits and tax. Raises `InvalidField("fx", ...)` when
    a rate is needed and missing, `CurrencyMismatch` when `fx` is for other currencies,
    `InvalidField("tenant_id", ...)` for another tenant's ledger, and whatever `tax_for` and
    `CreditLedger.consume` raise for bad countries, VAT ids or instants.
    """
    fx = _checked_fx(rating.currency, billing_currency, fx)
    if ledger.tenant_id != rating.tenant_id:
        raise InvalidField("tenant_id", f"ledger of {ledger.tenant_id!r}, rating of {rating.tenant_id!r}")
    lines = invoice_lines(rating, fx) + tuple(adjustments)
    if any(line.amount.currency != billing_currency for line in lines):
        raise CurrencyMismatch(f"an adjustment line is not in the invoice's {billing_currency}")
    before_credits = Money.total((line.amount for line in lines), billing_currency)
    ledger, credits, credits_note = _apply_credits(ledger, before_credits, at, reference)
    subtotal = before_credits - credits
    quote = tax_for(subtotal, seller_country, buyer_country, tax_date, buyer_vat_id, buyer_region)
    tax_amount = quote.tax
    if billing_currency.invoice_step != 1:  # three-decimal currencies: see Currency.invoice_step
        tax_amount = subtotal.times(ARITHMETIC.divide(quote.rate, Decimal(100))).rounded_for_invoice()
    tax = InvoiceTax(quote.rate, tax_amount, quote.reverse_charge, quote.note)
    draft = InvoiceDraft(
        tenant_id=rating.tenant_id,
        period=rating.period,
        reference=reference,
        currency=billing_currency,
        lines=lines,
        subtotal_before_credits=before_credits,
        credits_applied=credits,
        credits_note=credits_note,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax.amount,
        fx_note=None if fx is None else str(fx),
        usage=dict(usage),
        fx=fx,
        tax_fx=tax_fx,
    )
    return draft, ledger


def invoice_lines(rating: Rating, fx: FxRate | None) -> tuple[InvoiceLine, ...]:
    """The rating's lines converted with `fx` (None: already in the invoice's currency), each
    rounded once."""
    return tuple(_invoice_line(line, fx) for line in rating.lines)


def _checked_fx(prices: Currency, billing: Currency, fx: FxRate | None) -> FxRate | None:
    """The rate to convert with, or None when none is needed (an identity rate is dropped)."""
    if prices == billing:
        if fx is not None and (fx.from_currency, fx.to_currency) != (prices, billing):
            raise CurrencyMismatch(f"a {fx.from_currency}->{fx.to_currency} rate for a {prices} invoice")
        return None
    if fx is None:
        raise InvalidField("fx", f"required: the prices are in {prices}, the invoice in {billing}")
    if (fx.from_currency, fx.to_currency) != (prices, billing):
        raise CurrencyMismatch(
            f"a {fx.from_currency}->{fx.to_currency} rate cannot turn {prices} prices into {billing}"
        )
    return fx


def _invoice_line(line: RatedLine, fx: FxRate | None) -> InvoiceLine:
    amount, unit_price = line.amount, Money(line.unit_price, line.amount.currency)
    if fx is not None:
        amount, unit_price = convert(amount, fx), convert(unit_price, fx)
    return InvoiceLine(
        kind=line.kind,
        meter=line.meter,
        description=line.description,
        period=line.period,
        quantity=line.quantity,
        unit=line.unit,
        unit_price=unit_price.minor_units,
        amount=amount.rounded_for_invoice(),  # the one rounding of this line (design.md §7)
        included_quantity=line.included_quantity,
        details=line.details,
    )


def _apply_credits(
    ledger: CreditLedger, owed: Money, at: datetime, reference: str
) -> tuple[CreditLedger, Money, str | None]:
    """Draw up to `owed` (never a negative amount) from the ledger, if it is in `owed`'s currency."""
    if ledger.currency != owed.currency:
        note = (
            f"Credits not applied: the credit balance is in {ledger.currency}, the invoice in {owed.currency}"
        )
        return ledger, Money.zero(owed.currency), note
    wanted = max(Money.zero(owed.currency), owed)
    ledger, drawn = ledger.consume(wanted, at, reference)
    return ledger, drawn, None
