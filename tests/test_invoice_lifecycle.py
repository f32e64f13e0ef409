"""An invoice's life through the API: a draft that takes late usage during its grace period, late
usage after finalization carried onto the next invoice, credit notes, and the status moves."""

from __future__ import annotations

import asyncio
import calendar
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra.database import create_engine
from tests.conftest import auth, register_tenant

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
# Three consecutive closed periods inside the late-event window.
A, B, C = ((HOUR - timedelta(hours=6 - 2 * n), HOUR - timedelta(hours=4 - 2 * n)) for n in range(3))


def _lite_total(period, cpu_hours: int) -> str:
    """The lite invoice for `cpu_hours` in `period`: the $99 base fee and the 720 CPU-hour quota
    prorated by each hour's share of its own month, each line rounded to the cent."""
    months = Decimal(0)
    hour = period[0]
    while hour < period[1]:
        month_days = calendar.monthrange(hour.year, hour.month)[1]
        months += Decimal(1) / (month_days * 24)
        hour += timedelta(hours=1)
    cent = Decimal("0.01")
    base = (Decimal(99) * months).quantize(cent, ROUND_HALF_UP)
    over = (max(cpu_hours - 720 * months, Decimal(0)) * Decimal("0.05")).quantize(cent, ROUND_HALF_UP)
    return str(base + over)


def _tenant(api, tokens) -> str:
    return register_tenant(api, tokens, f"life-{uuid.uuid4().hex[:8]}")


def _cpu_hours(api, tokens, tenant_id: str, period, hours: int, tag: str) -> None:
    """`hours` CPU-hours ($0.05 each on the shared tier) in the period's first hour."""
    event = {
        "tenant_id": tenant_id,
        "timestamp": (period[0] + timedelta(minutes=10)).isoformat(),
        "event_id": f"{tenant_id}-{tag}",
        "usage": {"cpu_seconds": str(3600 * hours)},
    }
    assert api.post("/api/v1/usage", json=event, headers=auth(tokens["kernel"])).status_code == 202


def _invoice(api, tokens, tenant_id: str, period) -> dict:
    body = {
        "tenant_id": tenant_id,
        "period_start": period[0].isoformat(),
        "period_end": period[1].isoformat(),
    }
    response = api.post("/api/v1/invoices", json=body, headers=auth(tokens["finance"]))
    assert response.status_code in (200, 201), response.text
    return response.json()


def _finalize(api, tokens, invoice_id: str) -> dict:
    response = api.post(f"/api/v1/invoices/{invoice_id}/finalize", headers=auth(tokens["finance"]))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_draft_takes_late_usage_and_finalizing_freezes_it(api, tokens, stack):
    tenant_id = _tenant(api, tokens)
    _cpu_hours(api, tokens, tenant_id, A, 20, "first")
    draft = _invoice(api, tokens, tenant_id, A)
    assert (draft["status"], draft["total"], draft["number"]) == ("draft", "1.00", None)

    _cpu_hours(api, tokens, tenant_id, A, 10, "late")  # arrives while the invoice is a draft
    again = _invoice(api, tokens, tenant_id, A)
    assert (again["invoice_id"], again["total"]) == (draft["invoice_id"], "1.50")

    final = _finalize(api, tokens, draft["invoice_id"])
    assert final["status"] == "finalized" and final["number"] and final["total"] == "1.50"
    assert final["usage"]["cpu_seconds"] == "108000"


def test_usage_after_finalization_lands_on_the_next_invoice_once(api, tokens, stack):
    tenant_id = _tenant(api, tokens)
    _cpu_hours(api, tokens, tenant_id, A, 20, "a")
    first = _finalize(api, tokens, _invoice(api, tokens, tenant_id, A)["invoice_id"])
    assert first["total"] == "1.00"

    _cpu_hours(api, tokens, tenant_id, A, 7, "a-late")  # 7 CPU-hours more for the finalized period
    _cpu_hours(api, tokens, tenant_id, B, 2, "b")
    second = _finalize(api, tokens, _invoice(api, tokens, tenant_id, B)["invoice_id"])

    late = [line for line in second["lines"] if line["kind"] == "late_usage"]
    assert len(late) == 1 and late[0]["amount"] == "0.35"
    assert first["number"] in late[0]["description"] and "+25200 cpu_seconds" in late[0]["description"]
    assert second["total"] == "0.45"  # 2 CPU-hours of its own, 7 late ones
    unchanged = api.get(f"/api/v1/invoices/{first['invoice_id']}", headers=auth(tokens["finance"])).json()
    assert unchanged["total"] == "1.00" and unchanged["number"] == first["number"]

    third = _finalize(api, tokens, _invoice(api, tokens, tenant_id, C)["invoice_id"])
    assert [line for line in third["lines"] if line["kind"] == "late_usage"] == []


def test_credit_notes_take_back_part_then_the_rest_and_never_more(api, tokens, stack):
    tenant_id = f"cn-{uuid.uuid4().hex[:8]}"
    body = {
        "tenant_id": tenant_id,
        "name": tenant_id,
        "tier": "shared",
        "currency": "usd",  # a German consumer billed in the prices' currency: 19% VAT, no FX
        "country": "DE",
    }
    assert api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"])).status_code == 201
    _cpu_hours(api, tokens, tenant_id, A, 2000, "cn")  # 2000 CPU-hours: 100.00 net, 19% VAT
    draft = _invoice(api, tokens, tenant_id, A)
    finance = auth(tokens["finance"])
    path = f"/api/v1/invoices/{draft['invoice_id']}/credit-notes"

    refused = api.post(path, json={"reason": "draft"}, headers=finance)
    assert refused.status_code == 409 and refused.json()["type"].endswith("not-creditable")

    invoice = _finalize(api, tokens, draft["invoice_id"])
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("100.00", "19.00", "119.00")
    partial = api.post(path, json={"reason": "outage credit", "amount": "10.05"}, headers=finance)
    assert partial.status_code == 201, partial.text
    assert (partial.json()["subtotal"], partial.json()["tax"], partial.json()["total"]) == (
        "10.05",
        "1.91",
        "11.96",
    )

    too_much = api.post(path, json={"reason": "x", "amount": "90.00"}, headers=finance)
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "amount"

    rest = api.post(path, json={"reason": "cancelled"}, headers=finance).json()
    assert (rest["subtotal"], rest["tax"], rest["total"]) == ("89.95", "17.09", "107.04")
    assert rest["number"].startswith("ENIS-CN-") and rest["number"] != partial.json()["number"]
    nothing_left = api.post(path, json={"reason": "again"}, headers=finance)
    assert nothing_left.status_code == 422

    notes = api.get(path, headers=auth(tokens["viewer"])).json()["credit_notes"]
    assert [note["number"] for note in notes] == [partial.json()["number"], rest["number"]]
    assert api.post(path, json={"reason": "x"}, headers=auth(tokens["viewer"])).status_code == 403


def test_the_status_moves_on_only_along_the_lifecycle(api, tokens, stack):
    finance = auth(tokens["finance"])
    tenant_id = _tenant(api, tokens)
    _cpu_hours(api, tokens, tenant_id, A, 1, "s")
    draft = _invoice(api, tokens, tenant_id, A)
    base = f"/api/v1/invoices/{draft['invoice_id']}"
    assert api.post(f"{base}/void", headers=finance).status_code == 409  # a draft is changed, not voided
    _finalize(api, tokens, draft["invoice_id"])
    assert api.post(f"{base}/mark-uncollectible", headers=finance).json()["status"] == "uncollectible"
    assert api.post(f"{base}/mark-paid", headers=finance).json()["status"] == "paid"
    voiding = api.post(f"{base}/void", headers=finance)
    assert voiding.status_code == 409 and "paid" in voiding.json()["detail"]
    assert api.post(f"{base}/mark-paid", headers=auth(tokens["tenant"])).status_code == 403
    # Only the lifecycle's verbs are routes: another word is no such resource (issue 15).
    unknown = api.post(f"{base}/archive", headers=finance)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


def test_the_database_refuses_to_change_a_credit_note(api, tokens, stack):
    async def attempt() -> None:
        engine = create_engine(stack.settings.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE credit_notes SET reason = 'rewritten'"))
        finally:
            await engine.dispose()

    with pytest.raises(DBAPIError, match="written once"):
        asyncio.run(attempt())


def test_late_usage_is_priced_under_the_terms_its_period_was_billed_under(api, tokens, stack):
    tenant_id = _tenant(api, tokens)
    admin = auth(tokens["billing-admin"])
    lite = {"tier": "lite", "contracts": [], "licence": None}
    assert api.put(f"/api/v1/tenants/{tenant_id}/pricing", json=lite, headers=admin).status_code == 200
    _cpu_hours(api, tokens, tenant_id, A, 20, "lite")
    first = _finalize(api, tokens, _invoice(api, tokens, tenant_id, A)["invoice_id"])
    # Two hours of lite, prorated by the hours of their month (2/720 in a 30-day month: 0.28 of
    # the 99.00 base fee, 2 CPU-hours of quota, 18 over at 0.05 = 1.18; 1.17 in a 31-day month).
    assert first["total"] == _lite_total(A, cpu_hours=20)

    shared = {"tier": "shared", "contracts": [], "licence": None}
    assert api.put(f"/api/v1/tenants/{tenant_id}/pricing", json=shared, headers=admin).status_code == 200
    _cpu_hours(api, tokens, tenant_id, A, 7, "late")
    second = _finalize(api, tokens, _invoice(api, tokens, tenant_id, B)["invoice_id"])

    [late] = [line for line in second["lines"] if line["kind"] == "late_usage"]
    # Lite terms: 7 more CPU-hours over the quota, 0.35. Today's shared terms would re-rate the
    # period at 27 x 0.05 = 1.35 and charge 1.35 - 1.18 = 0.17.
    assert late["amount"] == "0.35", late
    assert first["number"] in late["description"]
