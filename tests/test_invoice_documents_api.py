"""Issue 14 through the API: tenants with an address and payment terms, the Factur-X PDF, the
EN 16931 XML (CII and UBL) of an invoice and of a credit note, the paid copy beside the kept
original, and the same access rules as the invoice."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import auth
from tests.invoicing.test_einvoice import VALIDATOR, _absent
from tests.metering_support import wait_settled

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START, END = HOUR - timedelta(hours=3), HOUR
ADDRESS = {"line1": "Hauptstraße 5", "postal_code": "80331", "city": "München", "country": "de"}


def _tenant(api, tokens, **extra):
    tenant = f"doc-{uuid.uuid4().hex[:8]}"
    body = {
        "tenant_id": tenant,
        "name": "Muster Software GmbH",
        "tier": "shared",
        "currency": "eur",
        "country": "DE",
        "locale": "de_DE",
        "address": ADDRESS,
        "email": "rechnung@muster.example",
        "payment_terms_days": 30,
        **extra,
    }
    response = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 201, response.text
    return tenant, response.json()


def test_tenants_take_an_address_an_email_and_payment_terms(api, tokens):
    tenant, created = _tenant(api, tokens, buyer_reference="991-12345-67")
    assert created["address"] == ADDRESS | {"country": "DE", "line2": None, "region": None}
    assert (created["email"], created["payment_terms_days"]) == ("rechnung@muster.example", 30)
    admin = auth(tokens["billing-admin"])
    changed = api.patch(
        f"/api/v1/tenants/{tenant}",
        json={"address": ADDRESS | {"line2": "3. OG"}, "payment_terms_days": 7, "locale": "fr"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["address"]["line2"] == "3. OG" and changed.json()["payment_terms_days"] == 7
    assert api.get(f"/api/v1/tenants/{tenant}", headers=admin).json()["locale"] == "fr"
    assert api.patch("/api/v1/tenants/nobody-here", json={"email": "a@b.example"}, headers=admin).status_code == 404
    for required in ("name", "locale"):  # NOT NULL columns: null is refused naming the field (fuzzing found it)
        refused = api.patch(f"/api/v1/tenants/{tenant}", json={required: None}, headers=admin)
        assert refused.status_code == 422 and required in refused.text, refused.text
    assert api.patch(f"/api/v1/tenants/{tenant}", json={"email": "a@b.example"},
                     headers=auth(tokens["finance"])).status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"address": ADDRESS | {"country": "XX"}}, "address.country"),
        ({"address": {"line1": "Hauptstraße 5", "city": "München", "country": "DE"}}, "address.postal_code"),
        ({"payment_terms_days": 400}, "payment_terms_days"),
        ({"email": "not an address"}, "email"),
    ],
)
def test_a_bad_tenant_detail_is_a_problem_naming_the_field(api, tokens, change, field):
    body = {"tenant_id": f"bad-{uuid.uuid4().hex[:6]}", "name": "x", "tier": "shared", "currency": "eur",
            "country": "DE", **change}
    response = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text


def _load_rates(stack) -> None:
    """A made-up USD rate on the period's last day (not a published one)."""
    import asyncio

    from infra import fx_store
    from infra.database import create_engine
    from pricing.fx import RateTable

    day = (END - timedelta(microseconds=1)).date()
    table = RateTable.from_ecb_csv(f"Date,USD,JPY,\n{day.isoformat()},1.1000,160.00,\n")

    async def load() -> None:
        engine = create_engine(stack.settings.database_url)
        async with engine.begin() as conn:
            await fx_store.import_table(conn, table, actor="test")
        await engine.dispose()

    asyncio.run(load())


def _finalized_invoice(api, tokens, stack, tenant):
    _load_rates(stack)
    at = (START + timedelta(minutes=30)).isoformat()
    events = [{"tenant_id": tenant, "timestamp": at, "event_id": f"{tenant}-1",
               "usage": {"cpu_seconds": "7200", "memory_gb_hours": "100"}}]
    assert api.post("/api/v1/usage", json={"events": events}, headers=auth(tokens["kernel"])).status_code == 202
    wait_settled(stack)
    body = {"tenant_id": tenant, "period_start": START.isoformat(), "period_end": END.isoformat()}
    created = api.post("/api/v1/invoices", json=body, headers=auth(tokens["finance"]))
    assert created.status_code == 201, created.text
    invoice = created.json()
    draft_xml = api.get(f"/api/v1/invoices/{invoice['invoice_id']}/einvoice", headers=auth(tokens["finance"]))
    assert draft_xml.status_code == 409
    finalized = api.post(f"/api/v1/invoices/{invoice['invoice_id']}/finalize", headers=auth(tokens["finance"]))
    return finalized.json()


def test_factur_x_pdf_and_en_16931_xml_of_an_invoice_and_its_credit_note(api, tokens, stack, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    tenant, _ = _tenant(api, tokens)
    invoice = _finalized_invoice(api, tokens, stack, tenant)
    invoice_id, number = invoice["invoice_id"], invoice["number"]
    finance = auth(tokens["finance"])

    pdf = api.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=finance)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'filename="{number}_{tenant}.pdf"' in pdf.headers["content-disposition"]
    reader = pypdf.PdfReader(io.BytesIO(pdf.content))
    assert number.encode() in reader.attachments["factur-x.xml"][0]
    text = reader.pages[0].extract_text()
    assert "Rechnung" in text and "Muster Software GmbH" in text and "80331 München" in text
    assert "Zahlbar innerhalb von 30 Tagen" in text

    files = {"invoice.pdf": pdf.content}
    for syntax in ("cii", "ubl"):
        xml = api.get(f"/api/v1/invoices/{invoice_id}/einvoice?syntax={syntax}", headers=finance)
        assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
        assert number.encode() in xml.content
        files[f"invoice.{syntax}.xml"] = xml.content
    assert api.get(f"/api/v1/invoices/{invoice_id}/einvoice?syntax=pdf", headers=finance).status_code == 422

    note = api.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json={"reason": "Ausfall", "amount": "0.10"},
                    headers=finance)
    assert note.status_code == 201, note.text
    note_id = note.json()["credit_note_id"]
    note_pdf = api.get(f"/api/v1/credit-notes/{note_id}/pdf", headers=finance)
    assert note_pdf.status_code == 200 and "Gutschrift" in pypdf.PdfReader(io.BytesIO(note_pdf.content)).pages[
        0].extract_text()
    files["credit-note.pdf"] = note_pdf.content
    for syntax in ("cii", "ubl"):
        xml = api.get(f"/api/v1/credit-notes/{note_id}/einvoice?syntax={syntax}", headers=finance)
        assert xml.status_code == 200 and b"381" in xml.content
        files[f"credit-note.{syntax}.xml"] = xml.content

    # Same access rules as the invoice: another tenant's token is refused before any rendering.
    other = auth(tokens["tenant"])
    for path in (f"/api/v1/invoices/{invoice_id}/einvoice", f"/api/v1/credit-notes/{note_id}/pdf",
                 f"/api/v1/credit-notes/{note_id}/einvoice"):
        assert api.get(path, headers=other).status_code == 403, path
    assert api.get(f"/api/v1/credit-notes/{uuid.uuid4()}/pdf", headers=finance).status_code == 404

    # Paid: a paid copy says so; the finalized original is kept unchanged (its hash too).
    assert api.post(f"/api/v1/invoices/{invoice_id}/mark-paid", headers=finance).status_code == 200
    paid = api.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=finance)
    assert f'filename="{number}_{tenant}_paid.pdf"' in paid.headers["content-disposition"]
    paid_text = re.sub(r"\s+", " ", pypdf.PdfReader(io.BytesIO(paid.content)).pages[0].extract_text())
    assert "Bezahlt" in paid_text and "überweisen" not in paid_text
    original = api.get(f"/api/v1/invoices/{invoice_id}/pdf?original=true", headers=finance)
    assert original.content == pdf.content

    if VALIDATOR.exists() and not _absent("saxonche"):
        paths = []
        for name, content in files.items():
            (tmp_path / name).write_bytes(content)
            paths.append(str(tmp_path / name))
        result = subprocess.run([sys.executable, str(VALIDATOR), *paths], capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
