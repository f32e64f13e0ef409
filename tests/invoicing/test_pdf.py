"""Invoice PDFs (issue 4 item 5): English and Spanish labels and amounts, pagination, storage.

Text is read back from the PDF with pypdf; Babel's non-breaking spaces are folded to plain
spaces before comparing. The invoices are hand-built documents in `InvoiceDraft.to_json()`'s
shape, not composed ones: these tests are about the layout, not the arithmetic.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest

from invoicing.pdf import render_invoice_pdf, store_pdf
from payments.wire import wire_reference

pypdf = pytest.importorskip("pypdf")

MARCH = {"start": "2025-03-01T00:00:00Z", "end": "2025-04-01T00:00:00Z"}
BUYER = {"name": "Acme Ibérica S.L.", "country": "ES", "region": "Madrid", "vat_id": "ESB12345678"}
ISSUER = {
    "name": "ENIS GmbH",
    "address": "Hauptstraße 1\n10115 Berlin",
    "country": "DE",
    "vat_id": "DE123456789",
    "iban": "DE89370400440532013000",
}


def _line(index: int, meter: str | None) -> dict[str, object]:
    return {
        "description": f"Item {index}",
        "quantity": "1500",
        "unit_price": "0.0125",
        "amount": "18.75",
        "unit": "s" if meter else None,
        "kind": "usage" if meter else "base_fee",
        "meter": meter,
        "period": MARCH,
    }


def _invoice(lines: int = 3, *, status: str = "finalized", reverse_charge: bool = False) -> dict[str, object]:
    meters = ("cpu_seconds", "network_gb", None)
    return {
        "invoice_id": "5b1c7e9e-1111-4222-8333-444455556666",
        "number": "ENIS-2025-000042" if status == "finalized" else None,
        "status": status,
        "tenant_id": "acme",
        "period_start": "2025-03-01T00:00:00+00:00",
        "period_end": "2025-04-01T00:00:00+00:00",
        "reference": "5b1c7e9e-1111-4222-8333-444455556666",
        "period": MARCH,
        "currency": "EUR",
        "lines": [_line(index, meters[index % 3]) for index in range(lines)],
        "subtotal_before_credits": "12345.67",
        "credits_applied": "100.00",
        "credits_note": None,
        "subtotal": "12245.67",
        "tax": "0.00" if reverse_charge else "2571.59",
        "tax_rate": "0" if reverse_charge else "21",
        "tax_note": "Spanish VAT",
        "reverse_charge": reverse_charge,
        "fx": "1 USD = 0.92 EUR (ECB euro reference rate, 2025-03-31)",
        "total": "12245.67" if reverse_charge else "14817.26",
    }


def _pages(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [re.sub(r"[\u00a0\u202f]", " ", page.extract_text()) for page in reader.pages]


def test_an_english_invoice_has_english_labels_and_amounts():
    pdf = render_invoice_pdf(_invoice(reverse_charge=True), BUYER, ISSUER, "en")

    assert pdf.startswith(b"%PDF")
    [text] = _pages(pdf)
    for expected in (
        "Invoice",
        "ENIS-2025-000042",
        "March 1, 2025 – March 31, 2025",
        "Description",
        "Quantity",
        "Unit price",
        "Amount",
        "CPU seconds",  # a meter's group heading
        "1,500 s",
        "€0.0125",
        "€18.75",
        "Subtotal before credits €12,345.67",
        "Credits applied -€100.00",
        "Total €12,245.67",
        "ESB12345678",
        "1 USD = 0.92 EUR",
        "Reverse charge: VAT to be accounted for by the recipient",
        "Payment instructions",
        f"Reference {wire_reference('ENIS-2025-000042')}",  # the RF reference statements match
        "Page 1 of 1",
    ):
        assert expected in text, expected
    assert "Draft" not in text


def test_a_spanish_invoice_has_spanish_labels_and_amounts():
    [text] = _pages(render_invoice_pdf(_invoice(), BUYER, ISSUER, "es_ES"))

    for expected in (
        "Factura",
        "1 de marzo de 2025 – 31 de marzo de 2025",
        "Concepto",
        "Cantidad",
        "Precio unitario",
        "Importe",
        "Segundos de CPU",
        "0,0125 €",
        "18,75 €",
        "Créditos aplicados -100,00 €",
        "Subtotal 12.245,67 €",
        "Impuesto (21 %) 2.571,59 €",
        "Total 14.817,26 €",
        "Instrucciones de pago",
        "Página 1 de 1",
    ):
        assert expected in text, expected
    assert "Inversión del sujeto pasivo" not in text


def test_a_draft_is_marked_as_one():
    [text] = _pages(render_invoice_pdf(_invoice(status="draft"), BUYER, ISSUER, "es"))

    assert "Borrador" in text


def test_a_200_line_invoice_paginates_with_the_header_on_every_page():
    pages = _pages(render_invoice_pdf(_invoice(200), BUYER, ISSUER, "en"))

    assert len(pages) > 1
    for number, text in enumerate(pages, start=1):
        assert "Description" in text  # thead repeats
        assert f"Page {number} of {len(pages)}" in text
    everything = "\n".join(pages)
    assert all(f"Item {index}\n" in everything or f"Item {index} " in everything for index in range(200))
    assert "Total €14,817.26" in pages[-1]


def test_store_pdf_writes_atomically_and_returns_the_sha256(tmp_path):
    pdf = b"%PDF-1.7 not really"

    path, digest = store_pdf(tmp_path, "inv-1", pdf)
    again, _ = store_pdf(tmp_path, "inv-1", pdf + b" v2")

    assert path == again == tmp_path / "invoices" / "inv-1.pdf"
    assert digest == hashlib.sha256(pdf).hexdigest()
    assert path.read_bytes() == pdf + b" v2"
    assert [file.name for file in (tmp_path / "invoices").iterdir()] == ["inv-1.pdf"]  # no temp left
