"""Invoice PDFs (issue 4 item 5, issue 14): Factur-X PDF/A-3 with its XML, drafts, paid copies,
payment instructions by method, pagination, storage.

Text is read back from the PDF with pypdf; Babel's non-breaking spaces are folded to plain
spaces before comparing. Invoices are composed from the default catalog (tests/invoicing/cases.py)
with a fixed clock.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from invoicing.document import InvoiceDocument, PaymentMethod, build_invoice
from invoicing.i18n import Localizer
from invoicing.pdf import (
    TEMPLATES,
    _stylesheet,
    parsed_html,
    pdf_filename,
    render_html,
    render_pdf,
    store_pdf,
)
from invoicing.seller import load_seller
from payments.wire import wire_reference
from tests.invoicing.cases import CASES, documents, stored_invoice

pypdf = pytest.importorskip("pypdf")
DOMESTIC = CASES[0]


def _document(case=DOMESTIC, **changes):
    invoice, buyer = stored_invoice(case)
    invoice |= changes
    return build_invoice(invoice, buyer, load_seller(), reference=wire_reference("ENIS-2025-000042"))


def _paid(original):
    return replace(original, payment=replace(original.payment, paid_on=date(2025, 4, 3), paid_by="stripe"))


def _zero():
    return _document(lines=[], subtotal_before_credits="0.00", subtotal="0.00", tax="0.00", total="0.00")


def _long():
    """Forty times the domestic case's lines: more than a page."""
    invoice, buyer = stored_invoice(DOMESTIC)
    invoice["lines"] = invoice["lines"] * 40  # type: ignore[operator]
    return build_invoice(invoice, buyer, load_seller(), reference="RF20ENIS2025000042")


def _pages(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [re.sub(r"[\u00a0\u202f]", " ", page.extract_text()) for page in reader.pages]


def test_a_finalized_invoice_is_a_factur_x_pdf_a_3_with_its_cii_embedded() -> None:
    pdf = render_pdf(_document(), "de_DE")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert "factur-x.xml" in reader.attachments
    xml = reader.attachments["factur-x.xml"][0]
    assert b"urn:cen.eu:en16931:2017" in xml and b"ENIS-2025-000042" in xml
    metadata = reader.xmp_metadata
    assert metadata is not None
    raw = metadata.stream.get_data()
    assert b"pdfaid:part" in raw and (b">3<" in raw or b'pdfaid:part="3"' in raw)
    assert b"factur-x" in raw.lower() and b"EN 16931" in raw


def test_the_factur_x_attachment_and_xmp_are_as_the_standard_names_them() -> None:
    from lxml import etree

    reader = pypdf.PdfReader(io.BytesIO(render_pdf(_document(), "de_DE")))
    catalog = reader.trailer["/Root"]
    [spec] = [entry.get_object() for entry in catalog["/AF"]]  # listed once
    assert spec["/F"] == spec["/UF"] == "factur-x.xml" and spec["/AFRelationship"] == "/Data"
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"
    assert catalog["/PageMode"] == "/UseAttachments" and catalog["/Lang"] == "de"
    raw = reader.xmp_metadata.stream.get_data()
    xmp = etree.fromstring(raw[raw.index(b"<x:xmpmeta") : raw.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")])
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
    assert len(xmp.findall(f"{rdf}RDF")) == 1  # one rdf:RDF, as XMP asks
    fx = {el.tag.rsplit("}", 1)[1]: el.text for el in xmp.iter("{urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#}*")}
    assert fx == {"DocumentType": "INVOICE", "DocumentFileName": "factur-x.xml", "Version": "1.0",
                  "ConformanceLevel": "EN 16931"}
    assert b"Factur-X PDFA Extension Schema" in raw  # the PDF/A extension schema declaring fx:
    info = reader.metadata
    assert info is not None and info.title == "ENIS Cloud Platform GmbH: Rechnung ENIS-2025-000042"


def test_a_draft_is_watermarked_and_has_no_e_invoice() -> None:
    draft = _document(number=None, status="draft", issued_at=None)
    pdf = render_pdf(draft, "es_ES")
    [text] = _pages(pdf)
    assert "Borrador" in text
    assert "factur-x.xml" not in pypdf.PdfReader(io.BytesIO(pdf)).attachments


def test_a_transfer_gives_the_rf_reference_bank_details_and_an_epc_qr_code() -> None:
    [text] = _pages(render_pdf(_document(), "de_DE"))
    assert "RF20ENIS2025000042" in text
    assert "DE89 3704 0044 0532 0130 00" in text and "COBADEFFXXX" in text
    assert "Bitte überweisen Sie 68,63 € bis zum 15. April 2025" in text
    assert "GiroCode" in text


def test_the_epc_qr_code_carries_the_sepa_transfer() -> None:
    from decimal import Decimal

    from segno.helpers import _make_epc_qr_data  # the reference implementation of the payload

    from invoicing.pdf import epc_payload, epc_qr

    for amount, bic in ((Decimal("68.63"), "COBADEFFXXX"), (Decimal("1234.50"), None), (Decimal("0.10"), None)):
        expected = _make_epc_qr_data("ENIS Cloud Platform GmbH", "DE89370400440532013000", amount,
                                     reference="RF20ENIS2025000042", bic=bic, encoding="utf-8")
        assert epc_payload("ENIS Cloud Platform GmbH", "DE89370400440532013000", bic, amount,
                           "RF20ENIS2025000042") == expected
    assert epc_qr("ENIS", "DE89370400440532013000", None, Decimal(1), "RF20ENIS2025000042").startswith(
        "data:image/png;base64,")


def test_finding_8_a_card_on_file_is_charged_and_paypal_is_paid_in_the_portal() -> None:
    card = replace(_document(), payment=replace(_document().payment, method=PaymentMethod.CARD))
    [text] = _pages(render_pdf(card, "en"))
    assert "will be charged to your card on file on April 15, 2025" in text
    assert "transfer" not in text.lower()
    paypal = replace(card, payment=replace(card.payment, method=PaymentMethod.PAYPAL))
    [text] = _pages(render_pdf(paypal, "en"))
    assert "with PayPal by April 15, 2025" in text and "transfer" not in text.lower()


def test_finding_8_a_paid_copy_says_paid_and_the_original_does_not() -> None:
    original = _document()
    paid = _paid(original)
    [text] = _pages(render_pdf(paid, "de_DE"))
    assert "Bezahlt" in text and "Vollständig bezahlt am 3. April 2025 (Karte)" in text
    assert "überweisen" not in text
    [before] = _pages(render_pdf(original, "de_DE"))
    assert "Bezahlt" not in before
    assert pdf_filename(paid, "acme") == "ENIS-2025-000042_acme_paid.pdf"
    assert pdf_filename(original, "acme") == "ENIS-2025-000042_acme.pdf"


def test_finding_7_a_zero_invoice_asks_for_nothing() -> None:
    [text] = _pages(render_pdf(_zero(), "en"))
    assert "Nothing to pay: this invoice totals €0.00." in text
    assert "Please" not in text and "transfer" not in text.lower() and "Due date" not in text


def test_a_long_invoice_breaks_over_pages_with_the_header_repeated() -> None:
    pages = _pages(render_pdf(_long(), "en"))
    assert len(pages) >= 2
    assert all("Unit price" in page for page in pages[:-1])  # the last may hold only the totals
    assert f"Page 1 of {len(pages)}" in pages[0]


def test_store_pdf_writes_atomically_and_returns_the_sha256(tmp_path) -> None:
    pdf = b"%PDF-1.7 test"
    path, digest = store_pdf(tmp_path, "inv-1", pdf)
    again, _ = store_pdf(tmp_path, "inv-1", pdf + b" v2")
    assert path == again and path.read_bytes() == pdf + b" v2"
    assert digest == hashlib.sha256(pdf).hexdigest()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def _kinds() -> Iterator[tuple[str, InvoiceDocument, str]]:
    """Every invoice kind, a credit note, a draft, a paid copy, a zero and a two-page invoice."""
    yield from documents()
    yield "draft", _document(number=None, status="draft", issued_at=None), "es_ES"
    yield "paid", _paid(_document()), "de_DE"
    yield "zero", _zero(), "en"
    yield "long", _long(), "fr_FR"


def _drawn(pdf: bytes, path: Path) -> list[bytes]:
    """The pages as pictures (pdftoppm, 40 dpi)."""
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(path)], check=True)
    return [page.read_bytes() for page in sorted(path.parent.glob(f"{path.name}-*.png"))]


def test_our_parse_and_user_agent_stylesheet_draw_every_kind_as_weasyprint_on_its_own(tmp_path: Path) -> None:
    """The template parsed as XML (expat), and templates/user-agent.css keeping WeasyPrint's HTML5
    rules for the elements the template uses only: a page drawn so is, pixel for pixel, the page
    WeasyPrint draws from the same HTML with its own HTML5 parser and stylesheet."""
    from weasyprint import HTML

    stylesheet, fonts = _stylesheet()
    for name, doc, locale in _kinds():
        html = render_html(doc, Localizer(locale))
        pictures = [
            _drawn(parsed.render(stylesheets=[stylesheet], font_config=fonts).write_pdf(), tmp_path / f"{name}-{which}")
            for which, parsed in (("ours", parsed_html(html)), ("html5", HTML(string=html, base_url=str(TEMPLATES))))
        ]
        assert pictures[0] and pictures[0] == pictures[1], name
