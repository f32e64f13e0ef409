"""POST /api/v1/invoices end to end: usage through the pipeline, rated, converted, taxed, stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.conftest import auth
from tests.metering_support import wait_settled

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START, END = HOUR - timedelta(hours=3), HOUR  # a closed period within the late-event window


def _register(api, tokens, tenant_id: str, currency: str, country: str, **extra) -> None:
    body = {
        "tenant_id": tenant_id,
        "name": tenant_id,
        "tier": "shared",
        "currency": currency,
        "country": country,
        **extra,
    }
    response = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 201, response.text


def _usage(api, tokens, stack, tenant_id: str) -> None:
    # 7,200 CPU-seconds (2 CPU-hours at $0.05) and 100 GB-hours of memory ($0.01): $1.10
    at = (START + timedelta(minutes=30)).isoformat()
    events = [
        {
            "tenant_id": tenant_id,
            "timestamp": at,
            "event_id": f"{tenant_id}-{n}",
            "usage": {"cpu_seconds": "3600", "memory_gb_hours": "50"},
        }
        for n in range(2)
    ]
    assert (
        api.post("/api/v1/usage", json={"events": events}, headers=auth(tokens["kernel"])).status_code == 202
    )
    wait_settled(stack)


def _invoice(api, tokens, tenant_id: str, token: str = "finance"):
    body = {"tenant_id": tenant_id, "period_start": START.isoformat(), "period_end": END.isoformat()}
    return api.post("/api/v1/invoices", json=body, headers=auth(tokens[token]))


def test_a_usd_invoice_to_the_cent_is_created_once_and_finalized_with_a_number(api, tokens, stack):
    tenant = f"inv-us-{uuid.uuid4().hex[:6]}"
    _register(api, tokens, tenant, "usd", "US", region="CA")
    _usage(api, tokens, stack, tenant)
    created = _invoice(api, tokens, tenant)
    assert created.status_code == 201, created.text
    invoice = created.json()
    # An EU seller (DE) invoicing a US business: outside the scope of EU VAT.
    assert (invoice["currency"], invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        "usd",
        "1.10",
        "0.00",
        "1.10",
    )
    assert [line["amount"] for line in invoice["lines"]] == ["0.10", "1.00"]
    assert invoice["status"] == "draft" and invoice["number"] is None
    again = _invoice(api, tokens, tenant)
    assert again.status_code == 200 and again.json()["invoice_id"] == invoice["invoice_id"]

    finalized = api.post(
        f"/api/v1/invoices/{invoice['invoice_id']}/finalize", headers=auth(tokens["finance"])
    )
    number = finalized.json()["number"]
    assert finalized.json()["status"] == "finalized" and number.startswith(f"ENIS-{datetime.now(UTC).year}-")
    twice = api.post(f"/api/v1/invoices/{invoice['invoice_id']}/finalize", headers=auth(tokens["finance"]))
    assert twice.json()["number"] == number


def test_a_eur_invoice_from_usd_prices_with_german_vat(api, tokens, stack):
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
    tenant = f"inv-de-{uuid.uuid4().hex[:6]}"
    _register(api, tokens, tenant, "eur", "DE")
    _usage(api, tokens, stack, tenant)
    invoice = _invoice(api, tokens, tenant).json()
    # $0.10 -> 0.0909 EUR -> 0.09; $1.00 -> 0.9090 EUR -> 0.91; domestic German VAT 19% on 1.00
    assert [line["amount"] for line in invoice["lines"]] == ["0.09", "0.91"]
    assert (invoice["currency"], invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        "eur",
        "1.00",
        "0.19",
        "1.19",
    )
    assert invoice["tax_rate"] == "19" and invoice["fx"].startswith("1 USD = 0.9090909091 EUR")
    assert day.isoformat() in invoice["fx"]  # the rate and its date are printed


def test_invoice_access_and_errors(api, tokens, stack):
    tenant = "tenant-a"  # the tenant token's own tenant
    _register_if_missing = api.get(f"/api/v1/tenants/{tenant}", headers=auth(tokens["viewer"]))
    if _register_if_missing.status_code == 404:
        _register(api, tokens, tenant, "usd", "US", region="NY")
    invoice = _invoice(api, tokens, tenant).json()
    own = api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=auth(tokens["tenant"]))
    assert own.status_code == 200 and own.json()["tenant_id"] == tenant
    other = f"inv-other-{uuid.uuid4().hex[:6]}"
    _register(api, tokens, other, "usd", "US", region="NY")
    foreign = _invoice(api, tokens, other).json()
    assert (
        api.get(f"/api/v1/invoices/{foreign['invoice_id']}", headers=auth(tokens["tenant"])).status_code
        == 403
    )
    assert _invoice(api, tokens, other, token="tenant").status_code == 403
    assert _invoice(api, tokens, "nobody-here").status_code == 404
    future = {
        "tenant_id": other,
        "period_start": END.isoformat(),
        "period_end": (END + timedelta(hours=2)).isoformat(),
    }
    refused = api.post("/api/v1/invoices", json=future, headers=auth(tokens["finance"]))
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "period_end"
    missing = api.get(f"/api/v1/invoices/{uuid.uuid4()}", headers=auth(tokens["finance"]))
    assert missing.status_code == 404


def test_the_pdf_of_a_finalized_invoice_is_rendered_once_and_kept(api, tokens, stack):
    import hashlib
    import io

    from pypdf import PdfReader

    tenant = f"inv-pdf-{uuid.uuid4().hex[:6]}"
    _register(api, tokens, tenant, "usd", "US", region="CA", locale="es")
    _usage(api, tokens, stack, tenant)
    invoice = _invoice(api, tokens, tenant).json()
    draft = api.get(invoice["pdf_url"], headers=auth(tokens["finance"]))
    assert draft.status_code == 200 and draft.headers["content-type"] == "application/pdf"
    assert "BORRADOR" in PdfReader(io.BytesIO(draft.content)).pages[0].extract_text().upper()
    number = api.post(
        f"/api/v1/invoices/{invoice['invoice_id']}/finalize", headers=auth(tokens["finance"])
    ).json()["number"]
    first = api.get(invoice["pdf_url"], headers=auth(tokens["finance"])).content
    second = api.get(invoice["pdf_url"], headers=auth(tokens["finance"])).content
    assert first == second  # kept, not rendered again
    text = PdfReader(io.BytesIO(first)).pages[0].extract_text()
    assert number in text and "Factura" in text and "1,10" in text  # Spanish labels and amounts
    kept = stack.settings.data_dir / "invoices" / f"{number}_{tenant}.pdf"  # named by number and tenant
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == hashlib.sha256(first).hexdigest()
    assert api.get(invoice["pdf_url"], headers=auth(tokens["tenant"])).status_code == 403
