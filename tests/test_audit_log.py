"""The audit log (issue 7): every money-affecting action leaves an entry with who acted, when, and
the state before and after, to the cent; an action that fails leaves none; and nobody changes or
removes an entry: the trigger refuses every role, the owner and superusers included, and an
application role granted INSERT and SELECT is refused by privilege."""

from __future__ import annotations

import asyncio
import copy
import getpass
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from infra import audit_store, invoice_store
from infra.database import create_engine
from infra.schema import tenants
from tests.conftest import auth, register_tenant
from tests.stack_support import dunning_round, finalized_lite_invoice


def _audit(api, tokens, **params) -> list[dict]:
    """Entries as finance reads them, the newest first."""
    response = api.get("/api/v1/audit", params=params, headers=auth(tokens["finance"]))
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def _one(api, tokens, tenant_id: str, action: str) -> dict:
    entries = _audit(api, tokens, tenant_id=tenant_id, action=action)
    assert len(entries) == 1, entries
    return entries[0]


def _finalized_invoice(api, tokens) -> dict:
    invoice = finalized_lite_invoice(api, tokens, "aud")
    assert invoice["tax"] == "0.00", invoice
    return invoice


def _run(stack, work):
    """Run `work(conn)` in one transaction of a fresh engine."""

    async def go():
        engine = create_engine(stack.settings.database_url)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


# --- prices ------------------------------------------------------------------------------------


def test_a_price_change_is_audited_with_the_prices_it_takes_over_from(api, tokens):
    admin = auth(tokens["billing-admin"])
    latest = api.get("/api/v1/catalog", headers=admin).json()["versions"][-1]
    at = datetime(2090, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 3000)  # no one rates it
    dearer = copy.deepcopy(latest)
    dearer.update(version=f"aud-{uuid.uuid4().hex[:8]}", effective_from=at.isoformat())
    dearer["plans"]["lite"]["base_fee_monthly_decimal"] = "12500"
    created = api.post("/api/v1/catalog/versions", json=dearer, headers=admin)
    assert created.status_code == 201, created.text
    # The old prices again from the next day, so tests copying the newest version copy those.
    same = copy.deepcopy(latest)
    same.update(version=f"aud-{uuid.uuid4().hex[:8]}", effective_from=(at + timedelta(days=1)).isoformat())
    assert api.post("/api/v1/catalog/versions", json=same, headers=admin).status_code == 201

    entries = _audit(api, tokens, action="catalog.version_added", limit=2)
    restored, changed = entries
    assert (changed["actor"], changed["subject_type"], changed["tenant_id"]) == (
        "billing-admin",
        "catalog",
        None,
    )
    assert changed["before"]["version"]["version"] == latest["version"]
    assert (
        changed["before"]["version"]["plans"]["lite"]["base_fee_monthly_decimal"]
        == (latest["plans"]["lite"]["base_fee_monthly_decimal"])
    )
    assert changed["after"]["version"]["plans"]["lite"]["base_fee_monthly_decimal"] == "12500"
    assert changed["after"]["revision"] == changed["before"]["revision"] + 1 == created.json()["revision"]
    assert restored["before"]["version"]["version"] == dearer["version"]
    assert changed["request_id"] and changed["request_id"] == created.headers["x-request-id"]

    again = api.post("/api/v1/catalog/versions", json=dearer, headers=admin)  # a retry changes nothing
    assert again.status_code == 200
    assert _audit(api, tokens, action="catalog.version_added", limit=2) == entries


def test_a_tenant_pricing_change_is_audited_with_the_terms_it_replaces(api, tokens):
    tenant = register_tenant(api, tokens, f"aud-{uuid.uuid4().hex[:8]}")
    contract = {
        "contract_id": "aud-2026",
        "effective_from": "2026-01-01T00:00:00Z",
        "effective_to": None,
        "rates": {"cpu_seconds": {"currency": "usd", "unit_amount_decimal": "4"}},
        "discount_percent": "10",
        "minimum_monthly_decimal": "300000",
    }
    body = {"tier": "enterprise", "contracts": [contract]}
    path = f"/api/v1/tenants/{tenant}/pricing"
    assert api.put(path, json=body, headers=auth(tokens["billing-admin"])).status_code == 200
    assert api.put(path, json=body, headers=auth(tokens["billing-admin"])).status_code == 200  # no change

    entry = _one(api, tokens, tenant, "tenant_pricing.changed")
    assert (entry["actor"], entry["subject_id"]) == ("billing-admin", tenant)
    assert entry["before"] == {"revision": 0, "tier": "shared", "settings": None}
    assert (entry["after"]["revision"], entry["after"]["tier"]) == (1, "enterprise")
    [stored] = entry["after"]["settings"]["contracts"]
    assert (stored["minimum_monthly_decimal"], stored["discount_percent"]) == ("300000", "10")
    assert stored["rates"]["cpu_seconds"]["unit_amount_decimal"] == "4"


def test_credit_grants_are_audited_with_the_balance_before_and_after(api, tokens):
    tenant = register_tenant(api, tokens, f"aud-{uuid.uuid4().hex[:8]}")
    path, finance = f"/api/v1/tenants/{tenant}/credits", auth(tokens["finance"])
    for amount in ("25.00", "10.50"):
        grant = {"amount": amount, "kind": "prepaid"}
        assert api.post(path, json=grant, headers=finance).status_code == 201
    refused = api.post(path, json={"amount": "5.00", "kind": "prepaid", "currency": "eur"}, headers=finance)
    assert refused.status_code == 422

    second, first = _audit(api, tokens, tenant_id=tenant, action="credit.granted")
    assert first["actor"] == second["actor"] == "finance"
    assert (first["before"]["balance"], first["after"]["amount"], first["after"]["balance"]) == (
        "0.00",
        "25.00",
        "25.00",
    )
    assert (second["before"]["balance"], second["after"]["amount"], second["after"]["balance"]) == (
        "25.00",
        "10.50",
        "35.50",
    )
    assert second["after"]["kind"] == "prepaid" and second["subject_type"] == "credit_grant"
    assert len(_audit(api, tokens, tenant_id=tenant)) == 2  # the refused grant left nothing


# --- invoices ----------------------------------------------------------------------------------


def test_finalization_credit_notes_and_voiding_are_audited(api, tokens):
    invoice = _finalized_invoice(api, tokens)
    tenant, invoice_id = invoice["tenant_id"], invoice["invoice_id"]
    finalized = _one(api, tokens, tenant, "invoice.finalized")
    assert (finalized["actor"], finalized["subject_id"]) == ("billing-admin", invoice_id)
    assert finalized["before"]["status"] == "draft" and finalized["before"]["number"] is None
    assert finalized["after"] == {
        "status": "finalized",
        "number": invoice["number"],
        "currency": "usd",
        "subtotal": "99.00",
        "tax": "0.00",
        "total": "99.00",
        "credits_applied": "0.00",
    }

    finance = auth(tokens["finance"])
    notes = f"/api/v1/invoices/{invoice_id}/credit-notes"
    note = api.post(notes, json={"reason": "outage", "amount": "10.00"}, headers=finance).json()
    too_much = api.post(notes, json={"reason": "again", "amount": "89.01"}, headers=finance)
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "amount"
    issued = _one(api, tokens, tenant, "credit_note.issued")  # the refused note left nothing
    assert issued["actor"] == "finance"
    assert issued["before"] == {"status": "finalized", "credited": "0.00", "remaining_subtotal": "99.00"}
    after = issued["after"]
    assert (after["credited"], after["remaining_subtotal"]) == ("10.00", "89.00")
    assert (after["subtotal"], after["tax"], after["total"]) == ("10.00", "0.00", "10.00")
    assert (after["credit_note"], after["reason"]) == (note["number"], "outage")

    for _ in range(2):  # voiding a void invoice again changes nothing, and logs nothing
        assert api.post(f"/api/v1/invoices/{invoice_id}/void", headers=finance).status_code == 200
    assert api.post(f"/api/v1/invoices/{invoice_id}/mark-paid", headers=finance).status_code == 409
    void = _one(api, tokens, tenant, "invoice.void")
    assert void["before"] == {"status": "finalized", "currency": "usd", "total": "99.00"}
    assert void["after"] == {"status": "void", "currency": "usd", "total": "99.00"}
    assert _audit(api, tokens, tenant_id=tenant, action="invoice.paid") == []


def test_marking_uncollectible_then_paid_is_audited(api, tokens):
    invoice = _finalized_invoice(api, tokens)
    admin = auth(tokens["billing-admin"])
    for action in ("mark-uncollectible", "mark-paid"):
        assert (
            api.post(f"/api/v1/invoices/{invoice['invoice_id']}/{action}", headers=admin).status_code == 200
        )
    paid, uncollectible = _audit(api, tokens, tenant_id=invoice["tenant_id"], limit=2)
    assert (uncollectible["action"], uncollectible["before"]["status"]) == (
        "invoice.uncollectible",
        "finalized",
    )
    assert (paid["action"], paid["before"]["status"], paid["after"]["status"]) == (
        "invoice.paid",
        "uncollectible",
        "paid",
    )


def test_a_batch_finalization_audits_every_invoice(stack, api, tokens):
    start = datetime(2018, 6, 1, tzinfo=UTC)
    ids = [f"aud-run-{uuid.uuid4().hex[:8]}" for _ in range(3)]

    async def finalize_batch(conn):
        await conn.execute(
            tenants.insert(),
            [{"tenant_id": t, "name": t, "tier": "shared", "currency": "usd", "country": "US"} for t in ids],
        )
        drafts = [
            {
                "invoice_id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "period_start": start,
                "period_end": start + timedelta(days=30),
                "currency": "usd",
                "subtotal": Decimal(f"1{n}.05"),
                "tax": Decimal("1.90"),
                "issuer": "AUD",
                "document": {"credits_applied": "0.00"},
                "lines": [],
            }
            for n, tenant_id in enumerate(ids)
        ]
        await invoice_store.insert_drafts(conn, drafts)
        await invoice_store.finalize_many(
            conn, [d["invoice_id"] for d in drafts], actor=audit_store.INVOICE_RUN
        )

    _run(stack, finalize_batch)
    for n, tenant_id in enumerate(ids):
        entry = _one(api, tokens, tenant_id, "invoice.finalized")
        assert entry["actor"] == "invoice-run" and entry["request_id"] is None
        assert (entry["after"]["subtotal"], entry["after"]["total"]) == (f"1{n}.05", f"1{n + 1}.95")


# --- payments ----------------------------------------------------------------------------------


def _pay(api, tokens, invoice: dict, method: str) -> dict:
    response = api.post(
        "/api/v1/payments",
        json={"invoice_id": invoice["invoice_id"], "payment_method": method},
        headers=auth(tokens["finance"]) | {"Idempotency-Key": f"aud-{uuid.uuid4()}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_a_card_payment_and_its_refunds_are_audited(api, tokens, stripe_server):
    invoice = _finalized_invoice(api, tokens)
    tenant = invoice["tenant_id"]
    body = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    admin = auth(tokens["billing-admin"])
    assert api.post(f"/api/v1/tenants/{tenant}/payment-methods", json=body, headers=admin).status_code == 204
    payment = _pay(api, tokens, invoice, "stripe")
    assert payment["status"] == "completed"

    created = _one(api, tokens, tenant, "payment.created")
    assert (created["actor"], created["subject_id"], created["before"]) == (
        "finance",
        payment["payment_id"],
        None,
    )
    assert (created["after"]["status"], created["after"]["amount"], created["after"]["method"]) == (
        "pending",
        "99.00",
        "stripe",
    )
    completed = _one(api, tokens, tenant, "payment.completed")
    assert (completed["before"]["status"], completed["before"]["received"]) == ("pending", "0")
    assert (completed["after"]["status"], completed["after"]["received"]) == ("completed", "99.00")
    paid = _one(api, tokens, tenant, "invoice.paid")
    assert (paid["actor"], paid["before"]["status"], paid["after"]["status"]) == (
        "finance",
        "finalized",
        "paid",
    )

    finance = auth(tokens["finance"])
    path = f"/api/v1/payments/{payment['payment_id']}/refunds"
    refund = api.post(path, json={"amount": "30.25", "reason": "requested_by_customer"}, headers=finance)
    assert refund.status_code == 201, refund.text
    too_much = api.post(path, json={"amount": "68.76"}, headers=finance)
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "amount"

    requested = _one(api, tokens, tenant, "refund.requested")  # the refused refund left nothing
    assert (requested["subject_id"], requested["actor"]) == (refund.json()["refund_id"], "finance")
    assert (requested["after"]["amount"], requested["after"]["refundable_after"]) == ("30.25", "68.75")
    done = _one(api, tokens, tenant, "refund.completed")
    assert (done["before"]["status"], done["after"]["status"], done["after"]["amount"]) == (
        "pending",
        "completed",
        "30.25",
    )
    partly = _one(api, tokens, tenant, "payment.partially_refunded")
    assert (partly["before"]["refunded"], partly["after"]["refunded"]) == ("0", "30.25")


def test_a_declined_card_and_its_dunning_retry_are_audited(api, tokens, stack):
    invoice = _finalized_invoice(api, tokens)
    tenant = invoice["tenant_id"]
    body = {"provider": "stripe", "payment_method_id": "pm_card_chargeDeclined"}
    admin = auth(tokens["billing-admin"])
    assert api.post(f"/api/v1/tenants/{tenant}/payment-methods", json=body, headers=admin).status_code == 204
    payment = _pay(api, tokens, invoice, "stripe")
    assert payment["status"] == "failed"

    assert dunning_round(stack.settings, datetime.now(UTC) + timedelta(days=1, minutes=1)) >= 1
    retried_failure, retry, first_failure = _audit(api, tokens, tenant_id=tenant, limit=3)
    assert (first_failure["action"], first_failure["actor"]) == ("payment.failed", "finance")
    assert first_failure["after"]["failure_code"] == "generic_decline"
    assert (retry["action"], retry["actor"]) == ("payment.pending", "dunning")
    assert (retry["before"]["attempts"], retry["after"]["attempts"], retry["after"]["amount"]) == (
        1,
        2,
        "99.00",
    )
    assert (retried_failure["action"], retried_failure["actor"]) == ("payment.failed", "dunning")


def test_a_payment_settled_by_a_webhook_names_the_provider(api, tokens, stack, paypal_server):
    invoice = _finalized_invoice(api, tokens)
    payment = _pay(api, tokens, invoice, "paypal")
    paypal_server.approve(payment["transaction_id"])
    approved = next(
        e
        for e in paypal_server.events
        if e["event_type"] == "CHECKOUT.ORDER.APPROVED" and e["resource"]["id"] == payment["transaction_id"]
    )
    url = f"http://127.0.0.1:{stack.settings.http_port}/api/v1/webhooks/paypal"
    assert paypal_server.deliver(approved, url) == 200

    completed = _one(api, tokens, invoice["tenant_id"], "payment.completed")
    paid = _one(api, tokens, invoice["tenant_id"], "invoice.paid")
    assert completed["actor"] == paid["actor"] == "webhook:paypal"
    assert (completed["after"]["received"], paid["after"]["total"]) == ("99.00", "99.00")


def test_a_wire_settled_by_bank_statements_is_audited(api, tokens):
    invoice = _finalized_invoice(api, tokens)
    reference = _pay(api, tokens, invoice, "wire")["transaction_id"]
    finance = auth(tokens["finance"]) | {"Content-Type": "text/csv"}
    header = "Entry ID,Booking Date,Value Date,Amount,Currency,Counterparty,Remittance Information\n"
    for amount in ("40.00", "59.00"):
        entry = f"E-{uuid.uuid4().hex[:10]},2025-06-05,2025-06-05,{amount},USD,Payer Inc,{reference}\n"
        assert api.post("/api/v1/bank-statements", content=header + entry, headers=finance).status_code == 200

    tenant = invoice["tenant_id"]
    received = _one(api, tokens, tenant, "payment.received")
    assert (received["before"]["received"], received["after"]["received"]) == ("0", "40.00")
    completed = _one(api, tokens, tenant, "payment.completed")
    assert (completed["before"]["received"], completed["after"]["received"]) == ("40.00", "99.00")
    assert _one(api, tokens, tenant, "invoice.paid")["actor"] == "finance"


# --- the CLI -----------------------------------------------------------------------------------


def _cli(stack, *args: str) -> subprocess.CompletedProcess:
    settings = stack.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the assertion below shows stderr
    )
    assert done.returncode == 0, done.stderr
    return done


def test_key_rotation_and_fx_rates_from_the_cli_are_audited(api, tokens, stack, tmp_path):
    _cli(stack, "keys", "rotate")
    [rotated] = _audit(api, tokens, action="keys.rotated", limit=1)
    assert rotated["actor"] == f"cli:{getpass.getuser()}"
    assert rotated["after"]["current_version"] == rotated["before"]["current_version"] + 1
    assert rotated["after"]["versions"] == [
        *rotated["before"]["versions"],
        rotated["after"]["current_version"],
    ]

    source, day = f"aud-{uuid.uuid4().hex[:8]}", date(2025, 6, 30)
    for usd in ("1.1000", "1.1234"):  # the second import replaces one figure
        rates = tmp_path / f"rates-{usd}.csv"
        rates.write_text(f"Date,USD,JPY,\n{day.isoformat()},{usd},160.00,\n")
        _cli(stack, "fx", "load", str(rates), "--source", source)
    entries = [
        e for e in _audit(api, tokens, action="fx.rates_loaded", limit=50) if e["subject_id"] == source
    ]
    replacing, first = entries
    assert first["actor"] == replacing["actor"] == f"cli:{getpass.getuser()}"
    assert (first["before"]["rates"], first["after"]["rates"], first["after"]["replaced"]) == (0, 2, 0)
    name = f"{day.isoformat()}/usd"
    assert (replacing["before"]["per_eur"], replacing["after"]["per_eur"]) == (
        {name: "1.1000"},
        {name: "1.1234"},
    )
    assert replacing["after"]["replaced"] == 1


# --- the log itself ----------------------------------------------------------------------------


def _refusal(stack, statement: str, role: str | None = None) -> str | None:
    """The database's error for `statement` (as `role`, if given), or None if it succeeded."""

    async def attempt(conn):
        if role is not None:
            await conn.execute(text(f'SET LOCAL ROLE "{role}"'))
        await conn.execute(text(statement))

    try:
        _run(stack, attempt)
    except DBAPIError as error:
        return str(error.orig)
    return None


def _an_entry(stack) -> int:
    async def write(conn):
        await audit_store.record(
            conn, "test", "test.written", "test", "1", None, None, {"n": Decimal("1.10")}
        )
        return await conn.scalar(text("SELECT max(id) FROM audit_log"))

    return _run(stack, write)


def test_no_one_can_change_or_delete_an_entry_not_even_the_owner(stack):
    entry = _an_entry(stack)
    for statement in (
        f"UPDATE audit_log SET after = '{{}}' WHERE id = {entry}",
        f"DELETE FROM audit_log WHERE id = {entry}",
        "TRUNCATE audit_log",
    ):
        refused = _refusal(stack, statement)  # as the session's superuser, who owns the table
        assert refused is not None and "append-only" in refused, statement

    async def read(conn):
        return (await conn.execute(text(f"SELECT after FROM audit_log WHERE id = {entry}"))).scalar_one()

    assert _run(stack, read) == {"n": "1.10"}


@pytest.fixture
def app_role(stack):
    """A role granted what the application's role is (docs/operations.md): INSERT and SELECT."""
    role = f"audit_app_{uuid.uuid4().hex[:8]}"

    async def create(conn):
        await conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        await conn.execute(text(f'GRANT SELECT, INSERT ON audit_log TO "{role}"'))

    async def drop(conn):
        await conn.execute(text(f'DROP OWNED BY "{role}"'))  # its grants
        await conn.execute(text(f'DROP ROLE "{role}"'))

    _run(stack, create)
    yield role
    _run(stack, drop)


def test_the_application_role_may_append_and_read_but_never_change_or_delete(stack, app_role):
    entry = _an_entry(stack)
    for statement in (
        f"UPDATE audit_log SET after = '{{}}' WHERE id = {entry}",
        f"DELETE FROM audit_log WHERE id = {entry}",
        "TRUNCATE audit_log",
    ):
        refused = _refusal(stack, statement, app_role)
        assert refused is not None and "permission denied" in refused, statement
    insert = "INSERT INTO audit_log (actor, action, subject_type, subject_id) VALUES ('a', 'b.c', 'd', 'e')"
    assert _refusal(stack, insert, app_role) is None
    assert _refusal(stack, f"SELECT * FROM audit_log WHERE id = {entry}", app_role) is None


def test_an_entry_commits_with_its_action_or_not_at_all(stack):
    marker = f"rolled-back-{uuid.uuid4().hex[:8]}"

    async def fail_after_recording(conn):
        await audit_store.record(conn, "test", "test.written", "test", marker, None, None, None)
        raise RuntimeError("the action fails after its entry was written")

    with pytest.raises(RuntimeError):
        _run(stack, fail_after_recording)

    async def count(conn):
        return await conn.scalar(text("SELECT count(*) FROM audit_log WHERE subject_id = :m"), {"m": marker})

    assert _run(stack, count) == 0


def test_the_audit_api_names_a_bad_filter_and_is_for_billers_only(api, tokens):
    finance = auth(tokens["finance"])
    for params, field in (({"since": "2026-01-01T00:00:00"}, "since"), ({"limit": "0"}, "limit")):
        response = api.get("/api/v1/audit", params=params, headers=finance)
        assert response.status_code == 422 and field in response.text, response.text
    for role in ("viewer", "tenant", "kernel"):
        assert api.get("/api/v1/audit", headers=auth(tokens[role])).status_code == 403
    since = datetime.now(UTC) + timedelta(days=1)
    assert _audit(api, tokens, since=since.isoformat()) == []
