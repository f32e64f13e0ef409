"""EN 16931 e-invoices from an `InvoiceDocument`: UN/CEFACT CII (Factur-X / ZUGFeRD profile
EN 16931, embedded in the PDF as `factur-x.xml`) and OASIS UBL 2.1 (XRechnung's syntax).

A small typed builder over `xml.etree` rather than drafthorse: drafthorse builds CII only, and we
need UBL from the same document too; both syntaxes here are one function each, in the element
order their schemas fix, and every output is checked by the official CEN Schematron in the tests
(tests/invoicing/test_einvoice.py). Pure: bytes out, no I/O.

Choices the rules force (EN 16931 business rules, BR-*):
- Prices are never negative (BR-27): a negative line has a negative quantity.
- A prepaid credit drawn on the invoice is a document-level allowance (BG-20) in the invoice's
  VAT category, since VAT is due only on what is still owed (invoicing/composition.py).
- "Not subject to VAT" (O, a buyer outside the EU) carries no VAT ids and no rate (BR-O-2,
  BR-O-5); the seller is identified by its register entry (BT-30, BR-CO-26).
- A German seller invoicing VAT in another currency states it in EUR too (BT-6, BT-111).
- XRechnung's buyer reference (BT-10) is the Leitweg-ID when the tenant has one, else the
  tenant's account id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree as ET

from invoicing.document import CREDIT_NOTE, InvoiceDocument, Line, Party, PaymentMethod, TaxBreakdown
from invoicing.i18n import Localizer, Text

CII_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
UBL_ROOT = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}
EN16931 = "urn:cen.eu:en16931:2017"
XRECHNUNG = "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0"
PEPPOL_BILLING = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
# UNTDID 4461 payment means: SEPA credit transfer, credit transfer (non-EUR), bank card, online.
MEANS = {PaymentMethod.CARD: "48", PaymentMethod.PAYPAL: "68"}

for _prefix, _uri in {**CII_NS, **UBL_NS}.items():
    ET.register_namespace(_prefix, _uri)


class _Builder:
    """`add(parent, "ram:Name", text, attr=value)`: a child element with a prefixed name."""

    def __init__(self, namespaces: dict[str, str]) -> None:
        self.ns = namespaces

    def name(self, tag: str) -> str:
        prefix, _, local = tag.partition(":")
        return f"{{{self.ns[prefix]}}}{local}"

    def add(self, parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        child = ET.SubElement(parent, self.name(tag), attrs)
        if text is not None:
            child.text = text
        return child


def amount(value: Decimal, digits: int) -> str:
    """An amount with the currency's digits, or two when those are zeros: EN 16931 takes at most
    two decimals (BR-DEC-*), which is why three-decimal currencies are invoiced in hundredths
    (`Currency.invoice_step`)."""
    exact = value.quantize(Decimal(1).scaleb(-digits))
    if digits > 2 and exact == exact.quantize(Decimal("0.01")):
        exact = exact.quantize(Decimal("0.01"))
    return format(exact, "f")


def number(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def _require_final(doc: InvoiceDocument) -> tuple[str, date]:
    if doc.number is None or doc.issue_date is None:
        raise ValueError("a draft has no e-invoice: it has no number and no issue date yet")
    return doc.number, doc.issue_date


# ---------------------------------------------------------------------------------------- CII


def cii_xml(doc: InvoiceDocument, words: Localizer) -> bytes:
    """The document as UN/CEFACT CII D16B, profile EN 16931 (Factur-X's `factur-x.xml`)."""
    number_, issued = _require_final(doc)
    b = _Builder(CII_NS)
    t: Callable[[Text], str] = words.text
    digits = doc.digits
    root = ET.Element(b.name("rsm:CrossIndustryInvoice"))
    context = b.add(root, "rsm:ExchangedDocumentContext")
    b.add(b.add(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)
    header = b.add(root, "rsm:ExchangedDocument")
    b.add(header, "ram:ID", number_)
    b.add(header, "ram:TypeCode", doc.type_code)
    _cii_date(b, b.add(header, "ram:IssueDateTime"), issued)
    for note in _notes(doc, words):
        included = b.add(header, "ram:IncludedNote")
        b.add(included, "ram:Content", note[1])
        b.add(included, "ram:SubjectCode", note[0])
    trade = b.add(root, "rsm:SupplyChainTradeTransaction")
    tax = doc.taxes[0]
    for line in doc.lines:
        _cii_line(b, trade, line, tax, digits, t)
    agreement = b.add(trade, "ram:ApplicableHeaderTradeAgreement")
    if doc.buyer_reference:
        b.add(agreement, "ram:BuyerReference", doc.buyer_reference)
    _cii_party(b, agreement, "ram:SellerTradeParty", doc.seller, tax, seller=True)
    _cii_party(b, agreement, "ram:BuyerTradeParty", doc.buyer, tax, seller=False)
    delivery = b.add(trade, "ram:ApplicableHeaderTradeDelivery")
    event = b.add(delivery, "ram:ActualDeliverySupplyChainEvent")
    _cii_date(b, b.add(event, "ram:OccurrenceDateTime"), doc.period[1])
    settlement = b.add(trade, "ram:ApplicableHeaderTradeSettlement")
    if doc.payment.reference and doc.payment.method == PaymentMethod.TRANSFER and doc.due_amount > 0:
        b.add(settlement, "ram:PaymentReference", doc.payment.reference)
    if doc.tax_eur is not None:
        b.add(settlement, "ram:TaxCurrencyCode", "EUR")
    b.add(settlement, "ram:InvoiceCurrencyCode", doc.currency)
    means = _means(doc)
    if means is not None:
        pm = b.add(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        b.add(pm, "ram:TypeCode", means)
        account = doc.payment.account
        if means in ("58", "30") and account is not None and account.bank is not None:
            creditor = b.add(pm, "ram:PayeePartyCreditorFinancialAccount")
            b.add(creditor, "ram:IBANID", account.bank.iban)
            b.add(creditor, "ram:AccountName", account.bank.account_holder)
            if account.bank.bic:
                b.add(b.add(pm, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", account.bank.bic)
    applicable = b.add(settlement, "ram:ApplicableTradeTax")
    b.add(applicable, "ram:CalculatedAmount", amount(tax.tax, digits))
    b.add(applicable, "ram:TypeCode", "VAT")
    if tax.exemption_code:
        b.add(applicable, "ram:ExemptionReason", t(tax.note))
    b.add(applicable, "ram:BasisAmount", amount(tax.basis, digits))
    b.add(applicable, "ram:CategoryCode", tax.category)
    if tax.exemption_code:
        b.add(applicable, "ram:ExemptionReasonCode", tax.exemption_code)
    if tax.category != "O":
        b.add(applicable, "ram:RateApplicablePercent", number(tax.rate))
    period = b.add(settlement, "ram:BillingSpecifiedPeriod")
    _cii_date(b, b.add(period, "ram:StartDateTime"), doc.period[0])
    _cii_date(b, b.add(period, "ram:EndDateTime"), doc.period[1])
    if doc.allowance:
        charge = b.add(settlement, "ram:SpecifiedTradeAllowanceCharge")
        b.add(b.add(charge, "ram:ChargeIndicator"), "udt:Indicator", "false")
        b.add(charge, "ram:ActualAmount", amount(doc.allowance, digits))
        b.add(charge, "ram:Reason", words.gettext("Prepaid credit applied"))
        category = b.add(charge, "ram:CategoryTradeTax")
        b.add(category, "ram:TypeCode", "VAT")
        b.add(category, "ram:CategoryCode", tax.category)
        if tax.category != "O":
            b.add(category, "ram:RateApplicablePercent", number(tax.rate))
    if doc.type_code != CREDIT_NOTE:
        terms = b.add(settlement, "ram:SpecifiedTradePaymentTerms")
        b.add(terms, "ram:Description", t(payment_terms(doc)))
        if doc.payment.due is not None and doc.due_amount > 0:
            _cii_date(b, b.add(terms, "ram:DueDateDateTime"), doc.payment.due)
    sums = b.add(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    b.add(sums, "ram:LineTotalAmount", amount(doc.line_total, digits))
    if doc.allowance:
        b.add(sums, "ram:AllowanceTotalAmount", amount(doc.allowance, digits))
    b.add(sums, "ram:TaxBasisTotalAmount", amount(doc.tax_basis, digits))
    b.add(sums, "ram:TaxTotalAmount", amount(doc.tax, digits), currencyID=doc.currency)
    if doc.tax_eur is not None:
        b.add(sums, "ram:TaxTotalAmount", amount(doc.tax_eur, 2), currencyID="EUR")
    b.add(sums, "ram:GrandTotalAmount", amount(doc.total, digits))
    b.add(sums, "ram:DuePayableAmount", amount(_payable(doc), digits))
    if doc.preceding is not None:
        reference = b.add(settlement, "ram:InvoiceReferencedDocument")
        b.add(reference, "ram:IssuerAssignedID", doc.preceding[0])
        if doc.preceding[1] is not None:
            formatted = b.add(reference, "ram:FormattedIssueDateTime")
            b.add(formatted, "qdt:DateTimeString", _ymd(doc.preceding[1]), format="102")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _cii_date(b: _Builder, parent: ET.Element, day: date) -> None:
    b.add(parent, "udt:DateTimeString", _ymd(day), format="102")


def _cii_line(
    b: _Builder, trade: ET.Element, line: Line, tax: TaxBreakdown, digits: int, t: Callable[[Text], str]
) -> None:
    item = b.add(trade, "ram:IncludedSupplyChainTradeLineItem")
    b.add(b.add(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", line.line_id)
    product = b.add(item, "ram:SpecifiedTradeProduct")
    b.add(product, "ram:Name", t(line.name))
    if line.note is not None:
        b.add(product, "ram:Description", t(line.note))
    price = b.add(b.add(item, "ram:SpecifiedLineTradeAgreement"), "ram:NetPriceProductTradePrice")
    b.add(price, "ram:ChargeAmount", number(line.unit_price))
    delivery = b.add(item, "ram:SpecifiedLineTradeDelivery")
    b.add(delivery, "ram:BilledQuantity", number(line.quantity), unitCode=line.unit_code)
    settlement = b.add(item, "ram:SpecifiedLineTradeSettlement")
    applicable = b.add(settlement, "ram:ApplicableTradeTax")
    b.add(applicable, "ram:TypeCode", "VAT")
    b.add(applicable, "ram:CategoryCode", tax.category)
    if tax.category != "O":
        b.add(applicable, "ram:RateApplicablePercent", number(tax.rate))
    period = b.add(settlement, "ram:BillingSpecifiedPeriod")
    _cii_date(b, b.add(period, "ram:StartDateTime"), line.period[0])
    _cii_date(b, b.add(period, "ram:EndDateTime"), line.period[1])
    sums = b.add(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
    b.add(sums, "ram:LineTotalAmount", amount(line.amount, digits))


def _cii_party(
    b: _Builder, parent: ET.Element, tag: str, party: Party, tax: TaxBreakdown, *, seller: bool
) -> None:
    node = b.add(parent, tag)
    if not seller and party.account:
        b.add(node, "ram:ID", party.account)
    b.add(node, "ram:Name", party.name)
    if party.registration:
        b.add(b.add(node, "ram:SpecifiedLegalOrganization"), "ram:ID", party.registration)
    if seller and (party.contact or party.phone or party.email):
        contact = b.add(node, "ram:DefinedTradeContact")
        b.add(contact, "ram:PersonName", party.contact or party.name)
        if party.phone:
            b.add(b.add(contact, "ram:TelephoneUniversalCommunication"), "ram:CompleteNumber", party.phone)
        if party.email:
            b.add(b.add(contact, "ram:EmailURIUniversalCommunication"), "ram:URIID", party.email)
    address = b.add(node, "ram:PostalTradeAddress")
    if party.address is not None:
        b.add(address, "ram:PostcodeCode", party.address.postal_code)
        b.add(address, "ram:LineOne", party.address.line1)
        if party.address.line2:
            b.add(address, "ram:LineTwo", party.address.line2)
        b.add(address, "ram:CityName", party.address.city)
    b.add(address, "ram:CountryID", party.address.country if party.address else party.country)
    if party.address is not None and party.address.region:
        b.add(address, "ram:CountrySubDivisionName", party.address.region)
    if party.email:
        b.add(b.add(node, "ram:URIUniversalCommunication"), "ram:URIID", party.email, schemeID="EM")
    if party.vat_id and tax.category != "O":
        b.add(b.add(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")
    if seller and party.tax_number:
        b.add(b.add(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.tax_number, schemeID="FC")


# ---------------------------------------------------------------------------------------- UBL


def ubl_xml(doc: InvoiceDocument, words: Localizer) -> bytes:
    """The document as OASIS UBL 2.1 (Invoice or CreditNote), XRechnung 3.0 customization."""
    number_, issued = _require_final(doc)
    credit = doc.type_code == CREDIT_NOTE
    kind = "CreditNote" if credit else "Invoice"
    b = _Builder(UBL_NS | {"root": UBL_ROOT[kind]})
    ET.register_namespace("", UBL_ROOT[kind])
    t: Callable[[Text], str] = words.text
    digits, currency = doc.digits, doc.currency
    tax = doc.taxes[0]
    root = ET.Element(b.name(f"root:{kind}"))
    b.add(root, "cbc:CustomizationID", XRECHNUNG)
    b.add(root, "cbc:ProfileID", PEPPOL_BILLING)
    b.add(root, "cbc:ID", number_)
    b.add(root, "cbc:IssueDate", issued.isoformat())
    if not credit and doc.payment.due is not None and doc.due_amount > 0:
        b.add(root, "cbc:DueDate", doc.payment.due.isoformat())
    b.add(root, f"cbc:{kind}TypeCode", doc.type_code)
    for subject, note in _notes(doc, words):
        b.add(root, "cbc:Note", f"#{subject}#{note}")
    b.add(root, "cbc:DocumentCurrencyCode", currency)
    if doc.tax_eur is not None:
        b.add(root, "cbc:TaxCurrencyCode", "EUR")
    b.add(root, "cbc:BuyerReference", doc.buyer_reference or doc.buyer.account or doc.buyer.name)
    period = b.add(root, "cac:InvoicePeriod")
    b.add(period, "cbc:StartDate", doc.period[0].isoformat())
    b.add(period, "cbc:EndDate", doc.period[1].isoformat())
    if doc.preceding is not None:
        reference = b.add(b.add(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        b.add(reference, "cbc:ID", doc.preceding[0])
        if doc.preceding[1] is not None:
            b.add(reference, "cbc:IssueDate", doc.preceding[1].isoformat())
    _ubl_party(b, b.add(root, "cac:AccountingSupplierParty"), doc.seller, tax, seller=True)
    _ubl_party(b, b.add(root, "cac:AccountingCustomerParty"), doc.buyer, tax, seller=False)
    delivery = b.add(root, "cac:Delivery")
    b.add(delivery, "cbc:ActualDeliveryDate", doc.period[1].isoformat())
    means = _means(doc)
    if means is not None:
        pm = b.add(root, "cac:PaymentMeans")
        b.add(pm, "cbc:PaymentMeansCode", means)
        if doc.payment.reference and means in ("58", "30"):
            b.add(pm, "cbc:PaymentID", doc.payment.reference)
        account = doc.payment.account
        if means in ("58", "30") and account is not None and account.bank is not None:
            payee = b.add(pm, "cac:PayeeFinancialAccount")
            b.add(payee, "cbc:ID", account.bank.iban)
            b.add(payee, "cbc:Name", account.bank.account_holder)
            if account.bank.bic:
                b.add(b.add(payee, "cac:FinancialInstitutionBranch"), "cbc:ID", account.bank.bic)
    if not credit:
        b.add(b.add(root, "cac:PaymentTerms"), "cbc:Note", t(payment_terms(doc)))
    if doc.allowance:
        charge = b.add(root, "cac:AllowanceCharge")
        b.add(charge, "cbc:ChargeIndicator", "false")
        b.add(charge, "cbc:AllowanceChargeReason", words.gettext("Prepaid credit applied"))
        b.add(charge, "cbc:Amount", amount(doc.allowance, digits), currencyID=currency)
        _ubl_category(b, charge, "cac:TaxCategory", tax, t, reason=False)
    total = b.add(root, "cac:TaxTotal")
    b.add(total, "cbc:TaxAmount", amount(doc.tax, digits), currencyID=currency)
    sub = b.add(total, "cac:TaxSubtotal")
    b.add(sub, "cbc:TaxableAmount", amount(tax.basis, digits), currencyID=currency)
    b.add(sub, "cbc:TaxAmount", amount(tax.tax, digits), currencyID=currency)
    _ubl_category(b, sub, "cac:TaxCategory", tax, t, reason=True)
    if doc.tax_eur is not None:
        b.add(b.add(root, "cac:TaxTotal"), "cbc:TaxAmount", amount(doc.tax_eur, 2), currencyID="EUR")
    sums = b.add(root, "cac:LegalMonetaryTotal")
    b.add(sums, "cbc:LineExtensionAmount", amount(doc.line_total, digits), currencyID=currency)
    b.add(sums, "cbc:TaxExclusiveAmount", amount(doc.tax_basis, digits), currencyID=currency)
    b.add(sums, "cbc:TaxInclusiveAmount", amount(doc.total, digits), currencyID=currency)
    if doc.allowance:
        b.add(sums, "cbc:AllowanceTotalAmount", amount(doc.allowance, digits), currencyID=currency)
    b.add(sums, "cbc:PayableAmount", amount(_payable(doc), digits), currencyID=currency)
    for line in doc.lines:
        node = b.add(root, f"cac:{kind}Line")
        b.add(node, "cbc:ID", line.line_id)
        quantity = "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity"
        b.add(node, quantity, number(line.quantity), unitCode=line.unit_code)
        b.add(node, "cbc:LineExtensionAmount", amount(line.amount, digits), currencyID=currency)
        line_period = b.add(node, "cac:InvoicePeriod")
        b.add(line_period, "cbc:StartDate", line.period[0].isoformat())
        b.add(line_period, "cbc:EndDate", line.period[1].isoformat())
        item = b.add(node, "cac:Item")
        if line.note is not None:
            b.add(item, "cbc:Description", t(line.note))
        b.add(item, "cbc:Name", t(line.name))
        _ubl_category(b, item, "cac:ClassifiedTaxCategory", tax, t, reason=False)
        b.add(b.add(node, "cac:Price"), "cbc:PriceAmount", number(line.unit_price), currencyID=currency)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _ubl_category(
    b: _Builder, parent: ET.Element, tag: str, tax: TaxBreakdown, t: Callable[[Text], str], *, reason: bool
) -> None:
    category = b.add(parent, tag)
    b.add(category, "cbc:ID", tax.category)
    if tax.category != "O":
        b.add(category, "cbc:Percent", number(tax.rate))
    if reason and tax.exemption_code:
        b.add(category, "cbc:TaxExemptionReasonCode", tax.exemption_code)
        b.add(category, "cbc:TaxExemptionReason", t(tax.note))
    b.add(b.add(category, "cac:TaxScheme"), "cbc:ID", "VAT")


def _ubl_party(b: _Builder, parent: ET.Element, party: Party, tax: TaxBreakdown, *, seller: bool) -> None:
    node = b.add(parent, "cac:Party")
    if party.email:
        b.add(node, "cbc:EndpointID", party.email, schemeID="EM")
    if not seller and party.account:
        b.add(b.add(node, "cac:PartyIdentification"), "cbc:ID", party.account)
    b.add(b.add(node, "cac:PartyName"), "cbc:Name", party.name)
    address = b.add(node, "cac:PostalAddress")
    if party.address is not None:
        b.add(address, "cbc:StreetName", party.address.line1)
        if party.address.line2:
            b.add(address, "cbc:AdditionalStreetName", party.address.line2)
        b.add(address, "cbc:CityName", party.address.city)
        b.add(address, "cbc:PostalZone", party.address.postal_code)
        if party.address.region:
            b.add(address, "cbc:CountrySubentity", party.address.region)
    country = party.address.country if party.address else party.country
    b.add(b.add(address, "cac:Country"), "cbc:IdentificationCode", country)
    if party.vat_id and tax.category != "O":
        scheme = b.add(node, "cac:PartyTaxScheme")
        b.add(scheme, "cbc:CompanyID", party.vat_id)
        b.add(b.add(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    if seller and party.tax_number:
        scheme = b.add(node, "cac:PartyTaxScheme")
        b.add(scheme, "cbc:CompanyID", party.tax_number)
        b.add(b.add(scheme, "cac:TaxScheme"), "cbc:ID", "FC")
    legal = b.add(node, "cac:PartyLegalEntity")
    b.add(legal, "cbc:RegistrationName", party.name)
    if party.registration:
        b.add(legal, "cbc:CompanyID", party.registration)
    if seller and (party.contact or party.phone or party.email):
        contact = b.add(node, "cac:Contact")
        b.add(contact, "cbc:Name", party.contact or party.name)
        if party.phone:
            b.add(contact, "cbc:Telephone", party.phone)
        if party.email:
            b.add(contact, "cbc:ElectronicMail", party.email)


# ------------------------------------------------------------------------------------- shared


def _means(doc: InvoiceDocument) -> str | None:
    """The UNTDID 4461 code of how this invoice is paid; None when nothing is to be paid."""
    if doc.type_code == CREDIT_NOTE or doc.total <= 0:
        return None
    if doc.payment.method in MEANS:
        return MEANS[doc.payment.method]
    return "58" if doc.currency == "EUR" else "30"


def _payable(doc: InvoiceDocument) -> Decimal:
    return max(doc.total, Decimal(0))


def payment_terms(doc: InvoiceDocument) -> Text:
    """The payment terms (BT-20) in words."""
    if doc.total <= 0:
        return Text.of("Nothing to pay.")
    if doc.payment.terms_days == 0:
        return Text.of("Payable on receipt, without deduction.")
    return Text.of("Payable within {days} days of the invoice date, without deduction.",
                   days=str(doc.payment.terms_days))


def _notes(doc: InvoiceDocument, words: Localizer) -> list[tuple[str, str]]:
    """Invoice notes (BG-1) with UNTDID 4451 subject codes: the seller's legal details (REG) and
    the tax wording (TXD), in the invoice's language."""
    seller = doc.seller
    notes = [("REG", " · ".join(part for part in (seller.name, seller.registration) if part))]
    notes.append(("TXD", words.text(doc.taxes[0].note)))
    if doc.reason:
        notes.append(("AAI", doc.reason))
    return notes
