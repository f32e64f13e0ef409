"""The invoice a reader (and a buyer's accounting system) gets: what the PDF and the EN 16931
e-invoices (invoicing/einvoice.py) are both made from, so they can never disagree.

Pure: the stored invoice document (invoicing/composition.py `InvoiceDraft.to_json`, with its id,
number and status), the buyer's tenant record, the seller and how the invoice is paid go in; an
`InvoiceDocument` comes out, every word a `Text` for the invoice's language (invoicing/i18n.py).

The numbers are made checkable (issue 14, findings 1-3): each printed line satisfies
`quantity x unit price = amount` after rounding to the currency's minor unit. A quantity is
shown at the precision of its unit (`UNIT_PLACES`), with more places (never more than six) only
when the priced unit needs them to recompute the amount, as a prorated month does; a unit price
is the price as priced when that recomputes the line, else the line's average price to at most
six decimals. A reserved quota is a line of its own at no charge; a proration says so; a
minimum true-up says the minimum and what usage came to. A line whose amount is negative (a
discount, late usage that rated lower) has a negative quantity and a positive price, as
EN 16931 wants prices (BR-27).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from invoicing.i18n import Amount, Country, Percent, Text
from invoicing.seller import PostalAddress, Seller
from pricing.money import minor_unit_digits

INVOICE = "380"  # UNTDID 1001: commercial invoice
CREDIT_NOTE = "381"
MAX_PLACES = 6

# Places a quantity of each catalog unit is shown with; other units get UNIT_PLACES_DEFAULT.
UNIT_PLACES = {
    "CPU-hour": 4,
    "GB-hour of memory": 3,
    "GB-hour of storage": 3,
    "GB of network egress": 3,
    "execution": 0,
    "month": 4,
    "year": 4,
}
UNIT_PLACES_DEFAULT = 4
# UN/ECE Recommendation 20 unit codes (EN 16931 BT-130); C62 is "one" (a unit, a piece).
UNIT_CODES = {
    "CPU-hour": "HUR",
    "GB of network egress": "E34",  # gigabyte
    "month": "MON",
    "year": "ANN",
}
METER_NAMES = {
    "cpu_seconds": "CPU time",
    "memory_gb_hours": "Memory",
    "storage_gb_hours": "Storage",
    "network_gb": "Network egress",
    "executions": "Executions",
}
TIER_NAMES = {
    "zero": "Zero",
    "shared": "Shared",
    "lite": "Lite",
    "enterprise": "Enterprise",
    "airgapped": "Air-gapped",
}
UNIT_NAMES = {  # the catalog's unit names, as msgids
    "CPU-hour": "CPU-hour",
    "GB-hour of memory": "GB-hour of memory",
    "GB-hour of storage": "GB-hour of storage",
    "GB of network egress": "GB of network egress",
    "execution": "execution",
    "month": "month",
    "year": "year",
    "licence": "licence",
    "discount": "flat",
    "true-up": "flat",
    "adjustment": "flat",
}


class PaymentMethod:
    CARD = "card"  # a card on file (Stripe), charged on the due date
    PAYPAL = "paypal"
    TRANSFER = "transfer"  # bank transfer quoting the RF creditor reference


@dataclass(frozen=True, slots=True)
class Party:
    name: str
    address: PostalAddress | None
    country: str
    vat_id: str | None = None
    tax_number: str | None = None  # the seller's (BT-32)
    registration: str | None = None  # the seller's register entry (BT-30)
    email: str | None = None
    account: str | None = None  # the buyer's tenant id: our reference for them
    phone: str | None = None
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    line_id: str
    name: Text  # BT-153
    note: Text | None  # the price's source, a proration, a quota: BT-154
    meter: str | None  # lines are grouped by meter on the PDF
    period: tuple[date, date]  # first and last day (BG-26)
    quantity: Decimal  # as shown
    unit: Text
    unit_code: str
    unit_price: Decimal  # major units, as shown (at most six decimals)
    amount: Decimal  # major units, the currency's digits
    partial: bool = False  # the line covers part of the invoice period: the PDF prints its dates


@dataclass(frozen=True, slots=True)
class TaxBreakdown:
    category: str  # UNTDID 5305: S standard, AE reverse charge, O outside the scope
    rate: Decimal  # percent
    basis: Decimal
    tax: Decimal
    note: Text  # the wording the invoice prints (reverse charge, OSS, outside the scope)
    exemption_code: str | None = None  # VATEX code (BT-121) for AE and O


@dataclass(frozen=True, slots=True)
class Payment:
    """How this invoice is paid, and whether it is."""

    method: str  # PaymentMethod
    due: date | None  # None: nothing to pay
    terms_days: int
    reference: str | None  # the RF creditor reference of a transfer
    account: Seller | None = None  # whose bank account a transfer goes to
    paid_on: date | None = None  # a paid copy
    paid_by: str | None = None  # the method it was paid with


@dataclass(frozen=True, slots=True)
class FxNote:
    from_currency: str
    to_currency: str
    rate: str
    on: date
    source: str


@dataclass(frozen=True)
class InvoiceDocument:
    type_code: str  # INVOICE or CREDIT_NOTE
    number: str | None  # None: a draft
    status: str
    issue_date: date | None
    period: tuple[date, date]
    currency: str  # ISO 4217, upper case
    seller: Party
    buyer: Party
    buyer_reference: str | None  # BT-10: the Leitweg-ID of a German public buyer
    lines: tuple[Line, ...]
    line_total: Decimal  # BT-106
    allowance: Decimal  # BT-107: prepaid credit applied
    tax_basis: Decimal  # BT-109
    tax: Decimal  # BT-110
    total: Decimal  # BT-112
    taxes: tuple[TaxBreakdown, ...]
    payment: Payment
    fx: FxNote | None = None
    tax_eur: Decimal | None = None  # BT-111 with BT-6 = EUR
    tax_eur_fx: FxNote | None = None
    credits_note: Text | None = None
    preceding: tuple[str, date | None] | None = None  # a credit note's invoice: number, date
    reason: str | None = None  # a credit note's reason, as finance wrote it
    notes: tuple[Text, ...] = field(default=())

    @property
    def digits(self) -> int:
        return minor_unit_digits(self.currency)

    @property
    def draft(self) -> bool:
        return self.number is None

    @property
    def paid(self) -> bool:
        return self.payment.paid_on is not None

    @property
    def due_amount(self) -> Decimal:
        return Decimal(0) if self.paid else max(self.total, Decimal(0))


def build_invoice(
    invoice: Mapping[str, object],
    buyer: Mapping[str, object],
    seller: Seller,
    *,
    method: str = PaymentMethod.TRANSFER,
    paid_on: date | None = None,
    paid_by: str | None = None,
    reference: str | None = None,
) -> InvoiceDocument:
    """The document for a stored invoice (`invoicing.service.invoice_document`) and its buyer
    (`Tenant.as_dict()`); `reference` is the RF creditor reference of its number."""
    currency = str(invoice["currency"]).upper()
    digits = minor_unit_digits(currency)
    period = _period_days(str(invoice["period_start"]), str(invoice["period_end"]))
    issued = invoice.get("issued_at")
    issue_date = None if not issued else datetime.fromisoformat(str(issued)).date()
    lines = tuple(_lines(_sequence(invoice["lines"]), currency, digits, period)) or (_nothing(period),)
    line_total = _major(invoice["subtotal_before_credits"])
    allowance = _major(invoice.get("credits_applied", "0"))
    tax_basis, tax, total = _major(invoice["subtotal"]), _major(invoice["tax"]), _major(invoice["total"])
    rate = _major(invoice.get("tax_rate", "0"))
    breakdown = _tax_breakdown(invoice, seller, _party_of(buyer), rate, tax_basis, tax)
    terms = _terms_days(buyer, seller)
    due_base = issue_date or period[1]
    payment = Payment(
        method=method,
        due=None if total <= 0 else due_base + timedelta(days=terms),
        terms_days=terms,
        reference=reference,
        account=seller,
        paid_on=paid_on,
        paid_by=paid_by,
    )
    tax_eur = invoice.get("tax_eur")
    credits_note = invoice.get("credits_note")
    return InvoiceDocument(
        type_code=INVOICE,
        number=None if not invoice.get("number") else str(invoice["number"]),
        status=str(invoice.get("status", "draft")),
        issue_date=issue_date,
        period=period,
        currency=currency,
        seller=seller_party(seller),
        buyer=_party_of(buyer),
        buyer_reference=_text_or_none(buyer.get("buyer_reference")),
        lines=lines,
        line_total=line_total,
        allowance=allowance,
        tax_basis=tax_basis,
        tax=tax,
        total=total,
        taxes=(breakdown,),
        payment=payment,
        fx=_fx(invoice.get("fx_rate")),
        tax_eur=None if not isinstance(tax_eur, Mapping) else _major(tax_eur["amount"]),
        tax_eur_fx=None if not isinstance(tax_eur, Mapping) else _fx(tax_eur),
        credits_note=None if not credits_note else Text.of(
            "Credits not applied: the credit balance is in another currency than the invoice."
        ),
    )


def build_credit_note(
    note: Mapping[str, object],
    invoice: Mapping[str, object],
    buyer: Mapping[str, object],
    seller: Seller,
) -> InvoiceDocument:
    """A credit note (type 381) against a finalized invoice: one line, net, at the invoice's tax.

    `note` has number, currency, subtotal, tax, total, reason, created_at; `invoice` is the
    invoice's document as `build_invoice` takes it."""
    original = build_invoice(invoice, buyer, seller)
    currency = str(note["currency"]).upper()
    subtotal, tax, total = _major(note["subtotal"]), _major(note["tax"]), _major(note["total"])
    issued = datetime.fromisoformat(str(note["created_at"])).date()
    line = Line(
        line_id="1",
        name=Text.of("Credit for invoice {number}", number=str(invoice["number"])),
        note=Text.verbatim(str(note["reason"])),
        meter=None,
        period=original.period,
        quantity=Decimal(1),
        unit=Text.of("flat"),
        unit_code="C62",
        unit_price=subtotal,
        amount=subtotal,
    )
    base = original.taxes[0]
    breakdown = TaxBreakdown(base.category, base.rate, subtotal, tax, base.note, base.exemption_code)
    return InvoiceDocument(
        type_code=CREDIT_NOTE,
        number=str(note["number"]),
        status="finalized",
        issue_date=issued,
        period=original.period,
        currency=currency,
        seller=original.seller,
        buyer=original.buyer,
        buyer_reference=original.buyer_reference,
        lines=(line,),
        line_total=subtotal,
        allowance=Decimal(0),
        tax_basis=subtotal,
        tax=tax,
        total=total,
        taxes=(breakdown,),
        # A credit note asks for nothing: the amount is refunded or set against what is owed.
        payment=Payment(PaymentMethod.TRANSFER, None, 0, None),
        preceding=(str(invoice["number"]), original.issue_date),
        reason=str(note["reason"]),
    )


def seller_party(seller: Seller) -> Party:
    return Party(
        name=seller.legal_name,
        address=seller.address,
        country=seller.country,
        vat_id=seller.vat_id,
        tax_number=seller.tax_number,
        registration=seller.registration,
        email=seller.email,
        phone=seller.phone,
        contact=seller.contact,
    )


def _party_of(buyer: Mapping[str, object]) -> Party:
    address = buyer.get("address")
    return Party(
        name=str(buyer["name"]),
        address=PostalAddress.from_json(address) if isinstance(address, Mapping) and address else None,
        country=str(buyer["country"]).upper(),
        vat_id=_text_or_none(buyer.get("vat_id")),
        email=_text_or_none(buyer.get("email")),
        account=_text_or_none(buyer.get("tenant_id")),
    )


def _terms_days(buyer: Mapping[str, object], seller: Seller) -> int:
    days = buyer.get("payment_terms_days")
    return seller.payment_terms_days if days is None else int(str(days))


def _tax_breakdown(
    invoice: Mapping[str, object], seller: Seller, buyer: Party, rate: Decimal, basis: Decimal, tax: Decimal
) -> TaxBreakdown:
    """The VAT category and the wording of the rule that applied (pricing/tax.py)."""
    if invoice.get("reverse_charge"):
        note = Text.of(
            "Reverse charge: VAT to be accounted for by the recipient "
            "(Art. 196 Directive 2006/112/EC). Buyer's VAT ID: {vat_id}.",
            vat_id=buyer.vat_id or "",
        )
        return TaxBreakdown("AE", Decimal(0), basis, tax, note, "VATEX-EU-AE")
    if rate == 0:
        note_text = str(invoice.get("tax_note") or "")
        if note_text.startswith("Outside the scope"):
            note = Text.of("Not subject to VAT in the EU: the buyer is established outside the EU (Art. 44 "
                           "Directive 2006/112/EC).")
        else:
            note = Text.of("No tax charged: no tax rule applies between the seller's and the buyer's country.")
        return TaxBreakdown("O", Decimal(0), basis, tax, note, "VATEX-EU-O")
    note_text = str(invoice.get("tax_note") or "")
    percent = Percent(rate)
    if note_text.startswith("Sales tax"):
        # "Sales tax 6.25% (TX state rate; local taxes not included)" (pricing/tax.py)
        state = note_text.partition("(")[2].partition(" ")[0]
        note = Text.of("Sales tax {rate} ({state} state rate; local taxes not included)",
                       rate=percent, state=state)
    elif "One-Stop Shop" in note_text:
        note = Text.of(
            "VAT {rate} of {country}, the customer's member state (Art. 58 Directive 2006/112/EC), "
            "declared through the One-Stop Shop (OSS).",
            rate=percent,
            country=Country(buyer.country),
        )
    else:
        note = Text.of("VAT {rate}", rate=percent)
    return TaxBreakdown("S", rate, basis, tax, note)


def _lines(
    rows: Sequence[Mapping[str, object]], currency: str, digits: int, period: tuple[date, date]
) -> list[Line]:
    lines: list[Line] = []
    for row in rows:
        for line in _printed(row, currency, digits, period):
            lines.append(_numbered(line, len(lines) + 1))
    return lines


def _nothing(period: tuple[date, date]) -> Line:
    """The line of an invoice that charges nothing: it says so, and an EN 16931 invoice needs at
    least one line (BR-16)."""
    return Line("1", Text.of("No charges for this period"), None, None, period, Decimal(0), Text.of("flat"),
                "C62", Decimal(0), Decimal(0))


def _numbered(line: Line, number: int) -> Line:
    return replace(line, line_id=str(number))


def _printed(
    row: Mapping[str, object], currency: str, digits: int, period: tuple[date, date]
) -> list[Line]:
    """The printed lines of one stored line: a usage line with a quota becomes two."""
    kind = str(row.get("kind", "usage"))
    details = row.get("details") if isinstance(row.get("details"), Mapping) else {}
    assert isinstance(details, Mapping)
    unit_name = str(row.get("unit") or "")
    unit = Text.of(UNIT_NAMES[unit_name]) if unit_name in UNIT_NAMES else Text.verbatim(unit_name)
    code = UNIT_CODES.get(unit_name, "C62")
    meter = None if row.get("meter") is None else str(row["meter"])
    quantity = Decimal(str(row["quantity"]))
    included = Decimal(str(row.get("included_quantity", "0")))
    price = Decimal(str(row["unit_price"]))
    amount = _major(row["amount"])
    line_period = _line_period(row, period)
    name, note = _wording(kind, row, details, meter, quantity, unit_name)
    partial = line_period != period
    printed = []
    if included > 0:
        shown_included = _quantize(included, UNIT_PLACES.get(unit_name, UNIT_PLACES_DEFAULT))
        tier = str(details.get("tier", ""))
        printed.append(
            Line("", name, Text.of("Included in the {tier} plan", tier=_tier(tier)) if tier else
                 Text.of("Included in the plan"), meter, line_period, shown_included, unit, code,
                 Decimal(0), Decimal(0), partial)
        )
        quantity -= included
        if quantity == 0 and amount == 0:
            return printed  # all of it was included: nothing beyond the quota to show
        note = Text.of("Beyond the included quota; {note}", note=note) if note else Text.of(
            "Beyond the included quota")
    shown_quantity, shown_price = checkable(quantity, price, amount, digits, unit_name)
    printed.append(Line("", name, note, meter, line_period, shown_quantity, unit, code, shown_price,
                        amount, partial))
    return printed


def checkable(
    quantity: Decimal, unit_price: Decimal, amount: Decimal, digits: int, unit: str = ""
) -> tuple[Decimal, Decimal]:
    """(quantity, unit price) as printed, such that their product rounds to `amount`.

    The sign goes on the quantity (prices are never negative, EN 16931 BR-27). Tries the
    unit's own places first, then more, with the price as priced; then the average price."""
    if amount < 0 or (amount == 0 and quantity < 0):
        quantity, unit_price = -abs(quantity), abs(unit_price)
    unit_price = abs(unit_price)
    if abs(quantity) == 1:  # one month, one licence, one flat charge: the price is the amount
        return quantity, abs(amount)
    least = UNIT_PLACES.get(unit, UNIT_PLACES_DEFAULT)
    priced = _quantize(unit_price, MAX_PLACES)
    for places in range(least, MAX_PLACES + 1):
        shown = _quantize(quantity, places)
        if _rounds_to(shown * priced, amount, digits):
            return shown, priced.normalize() if priced == priced.normalize() else priced
    for places in range(least, MAX_PLACES + 1):
        shown = _quantize(quantity, places)
        if shown:
            average = _quantize(abs(amount / shown), MAX_PLACES)
            if _rounds_to(shown * average, amount, digits):
                return shown, average
    return Decimal(1) if amount >= 0 else Decimal(-1), abs(amount)  # a flat charge as a last resort


def _rounds_to(product: Decimal, amount: Decimal, digits: int) -> bool:
    return product.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP) == amount


def _quantize(value: Decimal, places: int) -> Decimal:
    """`value` to at most `places` decimals, trailing zeros dropped (never an exponent)."""
    shown = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    normal = shown.normalize()
    return normal if normal.as_tuple().exponent <= 0 else shown.quantize(Decimal(1))  # type: ignore[operator]


def _wording(
    kind: str,
    row: Mapping[str, object],
    details: Mapping[str, object],
    meter: str | None,
    quantity: Decimal,
    unit: str,
) -> tuple[Text, Text | None]:
    """The line's name and note in messages; a line stored before issue 14 keeps its English."""
    d = {k: str(v) for k, v in details.items()}
    if kind == "usage" and meter in METER_NAMES:
        source = d.get("source")
        if source == "contract":
            note: Text | None = Text.of("Contract rate {contract}", contract=d.get("contract", ""))
        elif source == "spot":
            note = Text.of("Spot price {series}", series=d.get("series", ""))
        elif source == "catalog":
            note = Text.of("{tier} plan, price list {version}", tier=_tier(d.get("tier", "")),
                           version=d.get("version", ""))
        else:
            note = None
        return Text.of(METER_NAMES[meter]), note
    if kind == "base_fee" and "tier" in d:
        note = Text.of("Price list {version}", version=d.get("version", ""))
        if quantity != 1:
            note = Text.of("Price list {version}; prorated for part of the month",
                           version=d.get("version", ""))
        return Text.of("Base fee, {tier} plan", tier=_tier(d["tier"])), note
    if kind == "discount" and "contract" in d:
        return Text.of("Contract discount {contract}: {percent} off usage", contract=d["contract"],
                       percent=Percent(Decimal(d.get("percent", "0")))), None
    if kind == "minimum_true_up" and "minimum" in d:
        currency = d.get("currency", "")
        return Text.of("Minimum commitment true-up"), (
            Text.of("Monthly minimum {minimum}; usage came to {charged}",
                    minimum=_minor_param(d["minimum"], currency), charged=_minor_param(d["charged"], currency))
            if currency else None
        )
    if kind == "licence" and "licence" in d:
        return Text.of("Perpetual licence {licence}", licence=d["licence"]), None
    if kind == "support" and "licence" in d:
        start, end = date.fromisoformat(d["start"]), date.fromisoformat(d["end"])
        note = Text.of("Support year {start} – {end}", start=start, end=end)
        if d.get("days") != d.get("year_days"):
            note = Text.of("Support {start} – {end}, prorated: {days} of {year_days} days", start=start,
                           end=end, days=d.get("days", ""), year_days=d.get("year_days", ""))
        return Text.of("Support for licence {licence}", licence=d["licence"]), note
    if kind == "late_usage" and "invoice" in d:
        return Text.of("Late usage for {start} – {end}", start=date.fromisoformat(d["start"]),
                       end=date.fromisoformat(d["end"])), Text.of(
            "Usage that arrived after invoice {invoice} was issued", invoice=d["invoice"])
    return Text.verbatim(str(row.get("description", ""))), None


def _minor_param(minor: str, currency: str) -> Amount | str:
    try:
        return Amount(Decimal(minor).scaleb(-minor_unit_digits(currency)), currency)
    except (InvalidOperation, ValueError):
        return minor


def _tier(tier: str) -> Text:
    return Text.of(TIER_NAMES[tier]) if tier in TIER_NAMES else Text.verbatim(tier)


def _line_period(row: Mapping[str, object], period: tuple[date, date]) -> tuple[date, date]:
    line_period = row.get("period")
    if isinstance(line_period, Mapping):
        return _period_days(str(line_period["start"]), str(line_period["end"]))
    return period


def _fx(rate: object) -> FxNote | None:
    if not isinstance(rate, Mapping):
        return None
    return FxNote(str(rate["from"]), str(rate["to"]), str(rate["rate"]), date.fromisoformat(str(rate["date"])),
                  str(rate["source"]))


def _period_days(start: str, end: str) -> tuple[date, date]:
    """The first and last day of a half-open period of UTC instants."""
    return (datetime.fromisoformat(start).date(),
            (datetime.fromisoformat(end) - timedelta(microseconds=1)).date())


def _major(value: object) -> Decimal:
    return Decimal(str(value))


def _text_or_none(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _sequence(value: object) -> Sequence[Mapping[str, object]]:
    assert isinstance(value, list)
    return value
