"""Payments end to end: the API, the local Stripe and PayPal servers, their signed webhooks, the
invoice's status, dunning, refunds, and bank statements (camt.053 and CSV)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import auth
from tests.stack_support import dunning_round, finalized_lite_invoice


def _attach(api, tokens, tenant_id: str, method: str) -> None:
    body = {"provider": "stripe", "payment_method_id": method}
    response = api.post(
        f"/api/v1/tenants/{tenant_id}/payment-methods", json=body, headers=auth(tokens["billing-admin"])
    )
    assert response.status_code == 204, response.text


def _pay(api, tokens, invoice: dict, method: str, key: str | None = None):
    headers = auth(tokens["finance"]) | ({"Idempotency-Key": key} if key else {})
    return api.post(
        "/api/v1/payments",
        json={"invoice_id": invoice["invoice_id"], "payment_method": method},
        headers=headers,
    )


def _invoice_status(api, tokens, invoice: dict) -> str:
    return api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=auth(tokens["finance"])).json()[
        "status"
    ]


def _webhook_url(stack, provider: str) -> str:
    return f"http://127.0.0.1:{stack.settings.http_port}/api/v1/webhooks/{provider}"


def test_a_card_payment_through_stripe_charges_once_and_pays_the_invoice(api, tokens, stack, stripe_server):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_visa")
    key = f"pay-{uuid.uuid4()}"
    first = _pay(api, tokens, invoice, "stripe", key)
    assert first.status_code == 201, first.text
    payment = first.json()
    assert (payment["status"], payment["amount"], payment["currency"]) == ("completed", "99.00", "usd")
    assert payment["transaction_id"].startswith("pi_")
    assert _invoice_status(api, tokens, invoice) == "paid"

    again = _pay(api, tokens, invoice, "stripe", key)  # the client retries after a timeout
    assert again.status_code == 200 and again.json()["payment_id"] == payment["payment_id"]
    charges = [c for c in stripe_server.charges if c.payment_intent == payment["transaction_id"]]
    assert len(charges) == 1 and charges[0].amount == 9900

    reused = _pay(api, tokens, finalized_lite_invoice(api, tokens, "pay"), "stripe", key)
    assert reused.status_code == 422 and reused.json()["type"].endswith("idempotency-key-reused")


def test_stripe_webhooks_are_verified_applied_once_and_never_move_a_payment_back(
    api, tokens, stack, stripe_server
):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_visa")
    payment = _pay(api, tokens, invoice, "stripe", f"k-{uuid.uuid4()}").json()
    succeeded = next(
        e
        for e in stripe_server.events
        if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == payment["transaction_id"]
    )
    url = _webhook_url(stack, "stripe")
    assert stripe_server.deliver(succeeded, url) == 200
    replay = api.post(
        "/api/v1/webhooks/stripe",
        content=stripe_server.signed_event(succeeded)[0],
        headers=stripe_server.signed_event(succeeded)[1],
    )
    assert replay.status_code == 200 and replay.json()["outcome"].startswith("duplicate")

    body, headers = stripe_server.signed_event(succeeded)
    forged = api.post(
        "/api/v1/webhooks/stripe", content=body.replace(b"succeeded", b"succeeded "), headers=headers
    )
    assert forged.status_code == 400 and forged.json()["type"].endswith("invalid-signature")
    stale_body, stale_headers = stripe_server.signed_event(succeeded, timestamp=int(time.time()) - 3600)
    stale = api.post("/api/v1/webhooks/stripe", content=stale_body, headers=stale_headers)
    assert stale.status_code == 400 and "Stale" in stale.json()["detail"]

    # A failure reported after the success (delivered out of order) changes nothing.
    late_failure = stripe_server.record_event(
        "payment_intent.payment_failed",
        {
            "id": payment["transaction_id"],
            "object": "payment_intent",
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "generic_decline"},
        },
    )
    assert stripe_server.deliver(late_failure, url) == 200
    after = api.get(f"/api/v1/payments/{payment['payment_id']}", headers=auth(tokens["finance"])).json()
    assert after["status"] == "completed" and _invoice_status(api, tokens, invoice) == "paid"


def test_refunds_partial_then_the_rest_and_never_more(api, tokens, stack, stripe_server):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_visa")
    payment = _pay(api, tokens, invoice, "stripe", f"k-{uuid.uuid4()}").json()
    finance = auth(tokens["finance"])
    path = f"/api/v1/payments/{payment['payment_id']}/refunds"
    partial = api.post(
        path,
        json={"amount": "40.00", "reason": "requested_by_customer"},
        headers=finance | {"Idempotency-Key": "r1-" + payment["payment_id"]},
    )
    assert partial.status_code == 201 and partial.json()["amount"] == "40.00"
    same = api.post(
        path, json={"amount": "40.00"}, headers=finance | {"Idempotency-Key": "r1-" + payment["payment_id"]}
    )
    assert same.json()["refund_id"] == partial.json()["refund_id"]
    too_much = api.post(path, json={"amount": "59.01"}, headers=finance)
    assert too_much.status_code == 422 and too_much.json()["errors"][0]["field"] == "amount"
    rest = api.post(path, json={}, headers=finance)
    assert rest.status_code == 201 and rest.json()["amount"] == "59.00"
    view = api.get(f"/api/v1/payments/{payment['payment_id']}", headers=finance).json()
    assert (view["status"], view["refunded"]) == ("refunded", "99.00")
    refunded = [r for r in stripe_server.refunds.values() if r["payment_intent"] == payment["transaction_id"]]
    assert sorted(r["amount"] for r in refunded) == [4000, 5900]
    assert api.post(path, json={}, headers=auth(tokens["viewer"])).status_code == 403


def test_a_paypal_payment_is_approved_by_the_payer_and_captured_on_the_webhook(
    api, tokens, stack, paypal_server
):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    payment = _pay(api, tokens, invoice, "paypal", f"k-{uuid.uuid4()}").json()
    assert payment["status"] == "pending" and payment["approval_url"]
    order_id = payment["transaction_id"]
    paypal_server.approve(order_id)
    approved = next(
        e
        for e in paypal_server.events
        if e["event_type"] == "CHECKOUT.ORDER.APPROVED" and e["resource"]["id"] == order_id
    )
    assert paypal_server.deliver(approved, _webhook_url(stack, "paypal")) == 200
    view = api.get(f"/api/v1/payments/{payment['payment_id']}", headers=auth(tokens["finance"])).json()
    assert view["status"] == "completed" and _invoice_status(api, tokens, invoice) == "paid"
    assert len([c for c in paypal_server.charges if c.order_id == order_id]) == 1

    body, headers = paypal_server.signed_event(approved)
    tampered = api.post(
        "/api/v1/webhooks/paypal", content=body.replace(b"APPROVED", b"APPROVEd"), headers=headers
    )
    assert tampered.status_code == 400
    old_body, old_headers = paypal_server.signed_event(approved, datetime.now(UTC) - timedelta(hours=2))
    assert api.post("/api/v1/webhooks/paypal", content=old_body, headers=old_headers).status_code == 400


def _camt(entry_id: str, amount: str, reference: str, debtor: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>M-{entry_id}</MsgId><CreDtTm>2025-06-10T06:00:00+01:00</CreDtTm></GrpHdr>
<Stmt><Id>S-{entry_id}</Id><CreDtTm>2025-06-10T06:00:00+01:00</CreDtTm>
<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>USD</Ccy></Acct>
<Ntry><Amt Ccy="USD">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>2025-06-09</Dt></BookgDt><ValDt><Dt>2025-06-09</Dt></ValDt><AcctSvcrRef>{entry_id}</AcctSvcrRef>
<NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{debtor}</Nm></Dbtr></RltdPties>
<RmtInf><Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{reference}</Ref></CdtrRefInf></Strd></RmtInf>
</TxDtls></NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>""".encode()


def test_a_wire_is_reconciled_from_statements_with_a_partial_and_an_over_payment(api, tokens, stack):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    payment = _pay(api, tokens, invoice, "wire", f"k-{uuid.uuid4()}").json()
    reference = payment["transaction_id"]
    assert (
        payment["status"] == "pending"
        and reference.startswith("RF")
        and reference in payment["instructions"].replace(" ", "")
    )
    finance = auth(tokens["finance"])
    first = f"E-{uuid.uuid4().hex[:10]}"
    csv = f"Entry ID,Booking Date,Value Date,Amount,Currency,Counterparty,Remittance Information\n{first},2025-06-05,2025-06-05,40.00,USD,Payer Inc,{reference}\n"
    partial = api.post("/api/v1/bank-statements", content=csv, headers=finance | {"Content-Type": "text/csv"})
    assert partial.status_code == 200, partial.text
    assert partial.json()["entries"] == [
        {
            "entry_id": first,
            "match": "partial",
            "invoice_id": invoice["invoice_id"],
            "applied": "40.00",
            "overpaid": "0.00",
            "remaining_due": "59.00",
        }
    ]
    again = api.post("/api/v1/bank-statements", content=csv, headers=finance | {"Content-Type": "text/csv"})
    assert again.json()["entries"] == [{"entry_id": first, "match": "duplicate"}]
    assert _invoice_status(api, tokens, invoice) == "finalized"

    second = f"E-{uuid.uuid4().hex[:10]}"
    over = api.post(
        "/api/v1/bank-statements",
        content=_camt(second, "69.00", reference, "Payer Inc"),
        headers=finance | {"Content-Type": "application/xml"},
    )
    assert over.status_code == 200, over.text
    entry = over.json()["entries"][0]
    assert (entry["match"], entry["applied"], entry["overpaid"]) == ("overpayment", "59.00", "10.00")
    assert _invoice_status(api, tokens, invoice) == "paid"
    view = api.get(f"/api/v1/payments/{payment['payment_id']}", headers=finance).json()
    assert (view["status"], view["received"]) == ("completed", "99.00")
    credits = api.get(f"/api/v1/tenants/{invoice['tenant_id']}/credits", headers=finance).json()
    assert credits["balance"] == "10.00"


def test_a_declined_card_walks_the_dunning_schedule_to_uncollectible(api, tokens, stack):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_chargeDeclined")
    payment = _pay(api, tokens, invoice, "stripe", f"k-{uuid.uuid4()}").json()
    assert (payment["status"], payment["failure_code"]) == ("failed", "generic_decline")
    assert payment["next_retry_at"] and "will try again" in payment["attempts"][0]["reminder"]

    when = datetime.now(UTC)
    for days in (1, 3, 7):  # the default schedule, 1d,3d,7d
        when += timedelta(days=days, minutes=1)
        assert dunning_round(stack.settings, when) >= 1
    view = api.get(f"/api/v1/payments/{payment['payment_id']}", headers=auth(tokens["finance"])).json()
    assert view["status"] == "failed" and view["next_retry_at"] is None
    assert [a["outcome"] for a in view["attempts"]] == ["failed"] * 4
    assert view["attempts"][-1]["reminder"].startswith("Final notice")
    assert _invoice_status(api, tokens, invoice) == "uncollectible"


@pytest.mark.parametrize("number", ["4242424242424242", "4000 0566 5566 5556", "pm_4242-4242-4242-4242"])
def test_card_numbers_are_never_accepted(api, tokens, stack, number):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    body = {"provider": "stripe", "payment_method_id": number}
    response = api.post(
        f"/api/v1/tenants/{invoice['tenant_id']}/payment-methods",
        json=body,
        headers=auth(tokens["billing-admin"]),
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"].endswith("payment_method_id")
    assert number not in response.text


def test_payment_run_and_webhook_metrics_are_exported(api, tokens, stack, stripe_server):
    from tests.test_metrics import scrape

    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_visa")
    _pay(api, tokens, invoice, "stripe", f"k-{uuid.uuid4()}")
    forged_body, headers = stripe_server.signed_event({"id": "evt_x", "type": "x", "data": {"object": {}}})
    api.post("/api/v1/webhooks/stripe", content=forged_body + b" ", headers=headers)
    started = api.post(
        "/api/v1/invoice-runs", json={"period": "2025-01", "pdfs": False}, headers=auth(tokens["finance"])
    )
    assert started.status_code == 202
    wanted = [  # the series themselves: earlier tests may have exported the names already
        r'billing_payment_outcomes_total\{[^}]*method="stripe"[^}]*state="completed"',
        r'billing_webhook_events_total\{[^}]*outcome="refused"',
        "billing_invoice_run_tenants",
        "billing_invoice_run_progress",
    ]

    def missing() -> list[str]:
        text = scrape()
        return [pattern for pattern in wanted if not re.search(pattern, text)]

    deadline = time.monotonic() + 60  # pushed to the agent every few seconds; the run must also finish
    while not_yet := missing():
        assert time.monotonic() < deadline, f"not exported: {not_yet}"
        time.sleep(1)


def test_dunning_never_charges_an_invoice_paid_another_way(api, tokens, stack, stripe_server):
    invoice = finalized_lite_invoice(api, tokens, "pay")
    _attach(api, tokens, invoice["tenant_id"], "pm_card_chargeDeclined")
    failed = _pay(api, tokens, invoice, "stripe", f"k-{uuid.uuid4()}").json()
    assert failed["status"] == "failed" and failed["next_retry_at"]
    paid_by_wire = _pay(api, tokens, invoice, "wire", f"k-{uuid.uuid4()}").json()
    entry = f"E-{uuid.uuid4().hex[:10]}"
    statement = (
        "Entry ID,Booking Date,Value Date,Amount,Currency,Counterparty,Remittance Information\n"
        f"{entry},2025-06-05,2025-06-05,99.00,USD,Payer Inc,{paid_by_wire['transaction_id']}\n"
    )
    finance = auth(tokens["finance"])
    assert (
        api.post(
            "/api/v1/bank-statements", content=statement, headers=finance | {"Content-Type": "text/csv"}
        ).status_code
        == 200
    )
    assert _invoice_status(api, tokens, invoice) == "paid"

    def intents_for_invoice() -> int:
        return sum(
            1
            for i in stripe_server.intents.values()
            if i["metadata"].get("invoice_id") == invoice["invoice_id"]
        )

    intents_before = intents_for_invoice()

    dunning_round(stack.settings, datetime.now(UTC) + timedelta(days=1, minutes=1))
    assert intents_for_invoice() == intents_before == 1  # the card was not charged again
    view = api.get(f"/api/v1/payments/{failed['payment_id']}", headers=finance).json()
    assert (view["status"], view["next_retry_at"], len(view["attempts"])) == ("failed", None, 1)
