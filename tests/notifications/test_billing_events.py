"""The billing use cases emit their webhook events from the transactions that make the change:
invoices finalized, credited, paid and voided; payments succeeding, failing and refunded."""

from __future__ import annotations

import uuid

import pytest

from serve.auth import mint
from tests.conftest import auth, register_tenant
from tests.notifications.support import Receiver

MAY = {"period_start": "2025-05-01T00:00:00Z", "period_end": "2025-06-01T00:00:00Z"}
JUNE = {"period_start": "2025-06-01T00:00:00Z", "period_end": "2025-07-01T00:00:00Z"}


@pytest.fixture
def receiver():
    made = Receiver().start()
    yield made
    made.stop()


def _subscribed_lite_tenant(api, tokens, settings, receiver: Receiver) -> str:
    tenant = register_tenant(api, tokens, f"wh-billing-{uuid.uuid4().hex[:8]}", tier="lite")  # $99 a month
    own = auth(mint(settings.jwt_secret, "tenant", tenant_id=tenant))
    made = api.post("/api/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["*"]}, headers=own)
    assert made.status_code == 201, made.text
    receiver.secrets.append(made.json()["secret"])
    return tenant


def _finalized(api, tokens, tenant: str, period: dict) -> dict:
    admin = auth(tokens["billing-admin"])
    draft = api.post("/api/v1/invoices", json={"tenant_id": tenant} | period, headers=admin).json()
    invoice = api.post(f"/api/v1/invoices/{draft['invoice_id']}/finalize", headers=admin).json()
    assert invoice["status"] == "finalized", invoice
    return invoice


def _types(receiver: Receiver, count: int) -> list[str]:
    got = receiver.wait_for(count, timeout_s=20)
    assert all(r.error is None for r in got), [r.error for r in got]
    return [r.payload["type"] for r in got]


def test_an_invoice_finalized_credited_paid_by_card_and_refunded(api, tokens, settings, receiver):
    tenant = _subscribed_lite_tenant(api, tokens, settings, receiver)
    invoice = _finalized(api, tokens, tenant, MAY)
    assert _types(receiver, 1) == ["invoice.finalized"]
    data = receiver.all()[0].payload["data"]
    assert (data["invoice_id"], data["number"], data["total"]) == (invoice["invoice_id"], invoice["number"], "99.00")

    finance = auth(tokens["finance"])
    note = api.post(
        f"/api/v1/invoices/{invoice['invoice_id']}/credit-notes", json={"amount": "9.00", "reason": "goodwill"}, headers=finance
    )
    assert note.status_code == 201, note.text
    assert _types(receiver, 2)[1] == "credit_note.created"

    method = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    admin = auth(tokens["billing-admin"])
    assert api.post(f"/api/v1/tenants/{tenant}/payment-methods", json=method, headers=admin).status_code == 204
    pay = {"invoice_id": invoice["invoice_id"], "payment_method": "stripe"}
    payment = api.post("/api/v1/payments", json=pay, headers=finance | {"Idempotency-Key": f"wh-{uuid.uuid4()}"})
    assert payment.status_code == 201 and payment.json()["status"] == "completed", payment.text
    assert sorted(_types(receiver, 4)[2:]) == ["invoice.paid", "payment.succeeded"]

    refund = api.post(f"/api/v1/payments/{payment.json()['payment_id']}/refunds", json={"amount": "5.00"}, headers=finance)
    assert refund.status_code == 201, refund.text
    assert _types(receiver, 5)[4] == "payment.refunded"
    assert {r.payload["data"].get("payment_id") for r in receiver.all()[2:] if "payment" in r.payload["type"]} == {
        payment.json()["payment_id"]
    }


def test_a_declined_card_and_a_voided_invoice(api, tokens, settings, receiver):
    tenant = _subscribed_lite_tenant(api, tokens, settings, receiver)
    admin, finance = auth(tokens["billing-admin"]), auth(tokens["finance"])
    invoice = _finalized(api, tokens, tenant, MAY)
    method = {"provider": "stripe", "payment_method_id": "pm_card_chargeDeclined"}
    assert api.post(f"/api/v1/tenants/{tenant}/payment-methods", json=method, headers=admin).status_code == 204
    pay = {"invoice_id": invoice["invoice_id"], "payment_method": "stripe"}
    payment = api.post("/api/v1/payments", json=pay, headers=finance | {"Idempotency-Key": f"wh-{uuid.uuid4()}"})
    assert payment.json()["status"] == "failed", payment.text
    assert sorted(_types(receiver, 3)) == ["invoice.finalized", "invoice.payment_failed", "payment.failed"]
    failed = next(r.payload["data"] for r in receiver.all() if r.payload["type"] == "payment.failed")
    assert failed["failure_code"] == "generic_decline" and failed["next_retry_at"]

    june = _finalized(api, tokens, tenant, JUNE)
    assert api.post(f"/api/v1/invoices/{june['invoice_id']}/void", headers=finance).status_code == 200
    assert sorted(_types(receiver, 5)[3:]) == ["invoice.finalized", "invoice.voided"]
    voided = next(r.payload["data"] for r in receiver.all() if r.payload["type"] == "invoice.voided")
    assert (voided["invoice_id"], voided["status"]) == (june["invoice_id"], "void")
