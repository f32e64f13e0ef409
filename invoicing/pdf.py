"""Invoice and credit-note PDFs: an `InvoiceDocument` (invoicing/document.py) laid out by
WeasyPrint from `templates/`, as PDF/A-3b with its EN 16931 CII embedded as `factur-x.xml`
(Factur-X / ZUGFeRD, profile EN 16931) by the `factur-x` library.

Every word comes from the invoice language's catalog (invoicing/i18n.py), amounts and dates from
Babel for the tenant's locale, always from `Decimal`. A bank transfer gets the RF creditor
reference and, in euro, an EPC QR code ("GiroCode", EPC069-12) a banking app scans; a card on
file says when it is charged; PayPal says where to pay; a zero total asks for nothing; a paid
copy says PAID. `store_pdf` writes the bytes under the data dir and returns their SHA-256.

Speed (bench/invoice_run.py, where the time goes is in the README): WeasyPrint's layout and
drawing are most of a page, and they cost by the amount of text; what is left around them is kept
small. WeasyPrint subsets fonts with HarfBuzz when the system has libharfbuzz-subset (Debian:
libharfbuzz-subset0, installed by the README's set-up; otherwise fontTools, at several times the
cost); the stylesheet keeps to one system family (DejaVu Sans, two faces). The stylesheet and
font configuration are parsed once per process; each page's XHTML is parsed by expat, not by
WeasyPrint's pure-Python HTML5 parser (8 ms of a page). WeasyPrint writes the PDF/A-3b with the CII
attached and Factur-X's XMP in one pass (the factur-x library re-read and re-wrote the PDF with
pypdf); the XML schema check is left to the tests. Elements are matched against a user-agent
stylesheet of the rules the template needs (templates/user-agent.css), not all of HTML5's. The
GiroCode is a PNG drawn with crisp edges
(an SVG path of every module went through WeasyPrint's Python SVG renderer).
The cyclic garbage collector waits while a PDF is made and collects after it (invoicing/collector.py).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from invoicing.collector import collected_after
from invoicing.document import CREDIT_NOTE, InvoiceDocument, Line, PaymentMethod
from invoicing.einvoice import cii_xml, payment_terms
from invoicing.i18n import Localizer, Text

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ECB_SOURCES = {"ECB euro reference rate": "ECB euro reference rate"}  # the sources we word


def render_pdf(doc: InvoiceDocument, locale: str) -> bytes:
    """The Factur-X PDF of a finalized invoice or credit note; a draft is a plain PDF (it has no
    number, so no e-invoice), watermarked."""
    with collected_after():  # after _render has returned: its layout is garbage by then
        return _render(doc, Localizer(locale))


def _render(doc: InvoiceDocument, words: Localizer) -> bytes:
    stylesheet, fonts = _stylesheet()
    document = parsed_html(render_html(doc, words)).render(stylesheets=[stylesheet], font_config=fonts)
    if doc.draft:
        return bytes(document.write_pdf())
    return facturx_pdf(document, cii_xml(doc, words), doc, words)


def facturx_pdf(document: Any, xml: bytes, doc: InvoiceDocument, words: Localizer) -> bytes:
    """The laid-out `document` written as PDF/A-3b with `xml` attached as `factur-x.xml`
    (AFRelationship Data, listed in the catalog's AF) and Factur-X's XMP properties, as the
    factur-x library would set them, in WeasyPrint's one pass."""
    from facturx.facturx import FACTURX_FILENAME  # type: ignore[import-untyped]
    from weasyprint import Attachment  # type: ignore[import-untyped]

    title = words.gettext("Credit note" if doc.type_code == CREDIT_NOTE else "Invoice")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    document.metadata = _facturx_metadata_class()(
        title=f"{doc.seller.name}: {title} {doc.number}",
        authors=[doc.seller.name],
        description=f"{title} {doc.number}",
        keywords=["Factur-X", "EN 16931"],
        created=now,
        modified=now,
        lang=words.language,
    )
    attachment = Attachment(string=xml, name=FACTURX_FILENAME, description="Factur-X XML file", relationship="Data")
    return bytes(document.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment], finisher=_show_attachments))


def _show_attachments(_document: Any, pdf: Any) -> None:
    """A viewer opens the PDF with its attachments shown, as the factur-x library set it; the
    catalog's AF lists `factur-x.xml` once (WeasyPrint adds it from the embedded files' names
    and again as a file specification)."""
    pdf.catalog["PageMode"] = "/UseAttachments"
    pdf.catalog["AF"] = type(pdf.catalog["AF"])(dict.fromkeys(pdf.catalog["AF"]))


@cache
def _facturx_metadata_class() -> type:
    """WeasyPrint's document metadata, whose XMP also holds Factur-X's properties (fx:, profile
    EN 16931) and the PDF/A extension schema declaring them, taken from the factur-x library and
    put in WeasyPrint's own rdf:RDF: the XMP specification wants a single rdf:RDF in the packet
    (WeasyPrint's `xmp_metadata` would add a second)."""
    from lxml import etree  # type: ignore[import-untyped]
    from weasyprint.document import DocumentMetadata  # type: ignore[import-untyped]

    class FacturXMetadata(DocumentMetadata):  # type: ignore[misc]
        def generate_rdf_metadata(self, variant: str, version: int, conformance: str) -> bytes:
            rdf = etree.fromstring(super().generate_rdf_metadata(variant, version, conformance))
            rdf.extend(etree.fromstring(description) for description in _facturx_descriptions())
            return bytes(etree.tostring(rdf, encoding="utf-8"))

    return FacturXMetadata


@cache
def _facturx_descriptions() -> tuple[bytes, ...]:
    """The rdf:Description elements of the factur-x library's XMP for profile EN 16931 that are
    Factur-X's own (the fx: properties and their extension schema), about this document."""
    from facturx.facturx import generate_xmp_bytes
    from lxml import etree

    rdf_ns = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    ours = ("urn:factur-x:", "http://www.aiim.org/pdfa/ns/extension/")
    xmp = etree.fromstring(generate_xmp_bytes("factur-x", "en16931", None, {}))
    descriptions = []
    for description in xmp.iter(f"{{{rdf_ns}}}Description"):
        if any(str(child.tag).startswith(f"{{{ns}") for child in description for ns in ours):
            description.set(f"{{{rdf_ns}}}about", "")
            descriptions.append(bytes(etree.tostring(description)))
    return tuple(descriptions)


def parsed_html(html: str) -> Any:
    """`html` (the template's XHTML) parsed for WeasyPrint, to be styled by
    templates/user-agent.css (see there why) and invoice.css."""
    return _invoice_html_class()(html)


@cache
def _invoice_html_class() -> type:
    """WeasyPrint's HTML, parsed by expat (the template is well-formed XHTML) rather than by
    WeasyPrint's HTML5 parser, in pure Python and a twentieth of a page's time, with our user-agent
    stylesheet in place of its HTML5 one. tests/invoicing/test_pdf.py checks that every kind of
    invoice is drawn, pixel for pixel, as WeasyPrint draws it from the HTML on its own."""
    from xml.etree import ElementTree

    import cssselect2  # type: ignore[import-untyped]
    from weasyprint import CSS, HTML  # slow to import; only PDFs need it
    from weasyprint.html import UA_COUNTER_STYLE  # type: ignore[import-untyped]
    from weasyprint.urls import URLFetcher  # type: ignore[import-untyped]

    user_agent = CSS(filename=str(TEMPLATES / "user-agent.css"), counter_style=UA_COUNTER_STYLE)

    class InvoiceHTML(HTML):  # type: ignore[misc]
        def __init__(self, xhtml: str) -> None:  # what HTML.__init__ sets, from our own parse
            self.base_url, self.url_fetcher, self.media_type = str(TEMPLATES), URLFetcher(), "print"
            root = ElementTree.fromstring(xhtml)
            self.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
            self.etree_element = self.wrapper_element.etree_element

        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [user_agent]

    return InvoiceHTML


@cache
def _stylesheet() -> tuple[Any, Any]:
    """invoice.css parsed once per process, with the font configuration it was parsed against:
    reparsing it and rebuilding the font configuration was a quarter of each render."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

    fonts = FontConfiguration()
    atexit.register(_remove_font_folder, fonts)
    return CSS(filename=str(TEMPLATES / "invoice.css"), font_config=fonts), fonts


def _remove_font_folder(fonts: Any) -> None:
    """WeasyPrint copies the stylesheet's @font-face fonts into a temporary folder that the font
    configuration's `__del__` removes; for this one, kept for the whole process, that would run
    after `shutil` is gone at exit and print a traceback. So it runs before, once."""
    fonts.__del__()
    fonts._folder = None


def pdf_filename(doc: InvoiceDocument, tenant_id: str, invoice_id: str = "") -> str:
    """`ENIS-2025-000042_acme.pdf`: the number and the tenant, safe in any file system."""
    number = doc.number or f"draft-{invoice_id[:8]}"
    suffix = "_paid" if doc.paid else ""
    return re.sub(r"[^0-9A-Za-z._-]", "-", f"{number}_{tenant_id}{suffix}") + ".pdf"


@dataclass(frozen=True)
class _Row:
    number: str
    name: str
    note: str | None
    when: str | None
    quantity: str
    unit: str
    unit_price: str
    amount: str


def render_html(doc: InvoiceDocument, words: Localizer) -> str:
    """The HTML `render_pdf` lays out; separate so it can be looked at in a browser, and tested."""
    t, money = words.text, (lambda value: words.money(value, doc.currency))
    credit = doc.type_code == CREDIT_NOTE
    title = words.gettext("Credit note" if credit else "Invoice")
    return (
        _environment()
        .get_template("invoice.html.j2")
        .render(
            g=words.gettext,
            lang=words.language,
            title=title,
            doc=doc,
            credit=credit,
            number=doc.number or words.gettext("Draft"),
            issued=None if doc.issue_date is None else words.day(doc.issue_date),
            period=f"{words.day(doc.period[0])} – {words.day(doc.period[1])}",
            due=None if doc.payment.due is None or credit or doc.due_amount <= 0 else words.day(doc.payment.due),
            seller=doc.seller,
            buyer=doc.buyer,
            seller_country=words.country(doc.seller.country),
            buyer_country=words.country(doc.buyer.address.country if doc.buyer.address else doc.buyer.country),
            rows=[_row(line, doc, words) for line in doc.lines],
            totals=_totals(doc, words),
            tax_note=t(doc.taxes[0].note),
            tax_eur=None if doc.tax_eur is None else _tax_eur(doc, words),
            fx=None if doc.fx is None else _fx_note(doc, words),
            credits_note=None if doc.credits_note is None else t(doc.credits_note),
            preceding=None if doc.preceding is None else t(Text.of(
                "Corrects invoice {number} of {date}", number=doc.preceding[0],
                date=doc.preceding[1] or doc.period[1])),
            payment=_payment(doc, words, money),
            terms=None if credit else t(payment_terms(doc)),
            footer=_footer(doc, words),
            page_content=_css_page_counter(words.gettext("Page {page} of {pages}")),
        )
    )


def _row(line: Line, doc: InvoiceDocument, words: Localizer) -> _Row:
    return _Row(
        number=line.line_id,
        name=words.text(line.name),
        note=None if line.note is None else words.text(line.note),
        when=_days(line.period, words) if line.partial else None,
        quantity=words.number(line.quantity),
        unit=words.text(line.unit),
        unit_price=words.unit_price(line.unit_price, doc.currency),
        amount=words.money(line.amount, doc.currency),
    )


def _days(days: tuple[date, date], words: Localizer) -> str:
    first, last = days
    return words.day(first) if first == last else f"{words.day(first)} – {words.day(last)}"


def _totals(doc: InvoiceDocument, words: Localizer) -> list[dict[str, object]]:
    g = words.gettext

    def money(value: Decimal) -> str:
        return words.money(value, doc.currency)

    tax = doc.taxes[0]
    rows: list[tuple[str, str]] = []
    if doc.allowance:
        rows.append((g("Total of the lines"), money(doc.line_total)))
        rows.append((g("Prepaid credit applied"), money(-doc.allowance)))
    rows.append((g("Net amount"), money(doc.tax_basis)))
    if tax.category == "S":
        sales_tax = tax.note.msgid.startswith("Sales tax")
        label = words.text(Text.of("Sales tax {rate} on {basis}" if sales_tax else "VAT {rate} on {basis}",
                                   rate=words.percent(tax.rate), basis=money(tax.basis)))
    else:
        label = g("VAT")
    rows.append((label, money(doc.tax)))
    rows.append((g("Total credited") if doc.type_code == CREDIT_NOTE else g("Total"), money(doc.total)))
    return [
        {"label": label, "value": value, "grand": index == len(rows) - 1}
        for index, (label, value) in enumerate(rows)
    ]


def _tax_eur(doc: InvoiceDocument, words: Localizer) -> str:
    fx = doc.tax_eur_fx
    assert doc.tax_eur is not None and fx is not None
    return words.text(Text.of(
        "VAT in euro: {amount} (1 {from_currency} = {rate} EUR, {source}, {date})",
        amount=words.money(doc.tax_eur, "EUR"), from_currency=fx.from_currency, rate=_rate(fx.rate, words),
        source=_source(fx.source), date=fx.on))


def _fx_note(doc: InvoiceDocument, words: Localizer) -> str:
    fx = doc.fx
    assert fx is not None
    return words.text(Text.of(
        "Prices in {from_currency} converted at 1 {from_currency} = {rate} {to_currency} ({source}, {date}).",
        from_currency=fx.from_currency, to_currency=fx.to_currency, rate=_rate(fx.rate, words),
        source=_source(fx.source), date=fx.on))


def _rate(rate: str, words: Localizer) -> str:
    """The rate to six decimals at most (`1 USD = 0.924984 EUR`): printed for the reader; the
    conversion itself used the published figures exactly (pricing/fx.py)."""
    shown = Decimal(rate).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()
    return words.number(shown)


def _source(source: str) -> Text:
    return Text.of(ECB_SOURCES[source]) if source in ECB_SOURCES else Text.verbatim(source)


def _payment(doc: InvoiceDocument, words: Localizer, money: Any) -> dict[str, object]:
    """What the payment box says, and the bank details and QR code of a transfer."""
    g, t = words.gettext, words.text
    payment = doc.payment
    box: dict[str, object] = {"paid": None, "text": None, "bank": None, "qr": None}
    if doc.type_code == CREDIT_NOTE:
        box["text"] = t(Text.of("Nothing to pay: {total} will be refunded or set against your next invoice.",
                                total=money(doc.total)))
        return box
    if payment.paid_on is not None:
        box["paid"] = g("Paid")
        box["text"] = t(Text.of("Paid in full on {date} ({method}). Thank you.", date=payment.paid_on,
                                method=Text.of(_METHOD_NAMES.get(payment.paid_by or "", "bank transfer"))))
        return box
    if doc.total <= 0:
        box["text"] = t(Text.of("Nothing to pay: this invoice totals {total}.", total=money(doc.total)))
        return box
    due = payment.due or doc.period[1]
    if payment.method == PaymentMethod.CARD:
        box["text"] = t(Text.of("{total} will be charged to your card on file on {date}.",
                                total=money(doc.total), date=due))
        return box
    if payment.method == PaymentMethod.PAYPAL:
        box["text"] = t(Text.of("Please pay {total} with PayPal by {date}, from the billing portal.",
                                total=money(doc.total), date=due))
        return box
    account = payment.account
    box["text"] = t(Text.of("Please transfer {total} by {date} to the account below, quoting the reference.",
                            total=money(doc.total), date=due))
    if account is not None and account.bank is not None:
        bank = account.bank
        box["bank"] = [
            (g("Account holder"), bank.account_holder),
            (g("IBAN"), _grouped(bank.iban)),
            *([(g("BIC"), bank.bic)] if bank.bic else []),
            *([(g("Bank"), bank.bank_name)] if bank.bank_name else []),
            (g("Reference"), payment.reference or doc.number or ""),
        ]
        if doc.currency == "EUR":
            box["qr"] = epc_qr(bank.account_holder, bank.iban, bank.bic, doc.total, payment.reference)
            box["qr_label"] = g("Scan with your banking app (GiroCode)")
    return box


_METHOD_NAMES = {"stripe": "card", "card": "card", "paypal": "PayPal", "wire": "bank transfer"}


def epc_payload(name: str, iban: str, bic: str | None, total: Decimal, reference: str | None) -> bytes:
    """The EPC069-12 (version 002, UTF-8) SEPA credit transfer payload: service tag, version,
    character set, SCT, BIC, name, IBAN, amount, purpose, the RF creditor reference. The same
    bytes as segno's `make_epc_qr` makes (a test compares them)."""
    amount = format(total.quantize(Decimal("0.01")).normalize(), "f")
    fields = ["BCD", "002", "1", "SCT", bic or "", name[:70], iban, f"EUR{amount}", "", reference or ""]
    return "\n".join(fields).rstrip("\n").encode("utf-8")


def epc_qr(name: str, iban: str, bic: str | None, total: Decimal, reference: str | None) -> str:
    """An EPC QR code ("GiroCode") as a PNG data URI, four pixels a module (139 ppi at the 30 mm
    the stylesheet gives it, drawn with crisp edges as PDF/A asks): it draws like the vector path
    it replaces, which WeasyPrint's Python SVG renderer took 6.5 ms a PDF to draw. 8-bit grey,
    made by Pillow (WeasyPrint's own image library) from segno's modules: WeasyPrint re-encodes
    segno's 1-bit PNG as RGB, twice. Error correction M as the standard asks; a fixed mask
    instead of segno trying all eight (any mask scans; the search was 80% of the code's cost)."""
    import segno
    from PIL import Image

    qr = segno.make_qr(epc_payload(name, iban, bic, total, reference), error="m", boost_error=False, mask=0)
    size = len(qr.matrix)
    modules = bytes(0 if dark else 255 for row in qr.matrix for dark in row)
    image = Image.frombytes("L", (size, size), modules).resize((4 * size, 4 * size), Image.Resampling.NEAREST)
    png = io.BytesIO()
    image.save(png, format="PNG")
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")


def _grouped(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _footer(doc: InvoiceDocument, words: Localizer) -> list[str]:
    g = words.gettext
    seller = doc.seller
    parts = [seller.name]
    if seller.address is not None:
        parts.append(f"{seller.address.line1}, {seller.address.postal_code} {seller.address.city}")
    if seller.registration:
        parts.append(seller.registration)
    directors = doc.payment.account.directors if doc.payment.account else None
    if directors:
        parts.append(f"{g('Managing directors')}: {directors}")
    if seller.vat_id:
        parts.append(f"{g('VAT ID')} {seller.vat_id}")
    if seller.tax_number:
        parts.append(f"{g('Tax number')} {seller.tax_number}")
    return parts


def store_pdf(data_dir: Path, name: object, pdf: bytes) -> tuple[Path, str]:
    """Write `pdf` to `data_dir/invoices/<name>.pdf` (`ENIS-2025-000042_acme.pdf`) atomically;
    return the path and SHA-256.

    A temporary file in the same directory is renamed over the target, so a reader never sees a
    half-written PDF and a re-render replaces the old one whole.
    """
    folder = Path(data_dir) / "invoices"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.pdf"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(pdf)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target, hashlib.sha256(pdf).hexdigest()


def _css_page_counter(message: str) -> str:
    """`"Page {page} of {pages}"` as a CSS `content` value with the page counters in it."""
    parts: Sequence[str] = re.split(r"(\{page\}|\{pages\})", message)
    tokens = []
    for part in parts:
        if part in ("{page}", "{pages}"):
            tokens.append(f"counter({part[1:-1]})")
        elif part:
            tokens.append(json.dumps(part, ensure_ascii=False))  # a CSS string: no backslashes in the catalog
    return " ".join(tokens)


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["j2", "html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
