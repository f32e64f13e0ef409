"""Issue 15: card numbers in free text. The API refuses them naming the field; the audit log masks
any that reach it another way."""

from __future__ import annotations

import uuid

import pytest

from infra.audit_store import json_safe
from infra.card_numbers import card_numbers, mask
from tests.conftest import auth
from tests.stack_support import finalized_lite_invoice

CARD = "4242 4242 4242 4242"  # Stripe's test Visa: Luhn-valid


@pytest.mark.parametrize(
    "text",
    [CARD, "4242-4242-4242-4242", "Acme (card 4242424242424242)", "378282246310005", "6011 1111 1111 1117"],
)
def test_card_numbers_are_found(text):
    assert card_numbers(text)


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4241",  # Luhn says no
        "Acme Ltd",
        "123e4567-e89b-12d3-a456-426614174000",
        "12345678-1234-1234-1234-123456789012",  # a UUID of digits: one run of 32
        "DE89 3704 0044 0532 0130 00",  # an IBAN
        "ENIS-2024-000777",
        "2026-12-04T10:00:00+00:00",
        "424242424242",  # 12 digits
    ],
)
def test_other_numbers_are_not_card_numbers(text):
    assert card_numbers(text) == [] and mask(text) == text


def test_the_audit_log_masks_card_numbers_in_any_text():
    entry = {"reason": f"paid by {CARD}", "lines": [{"note": "5555555555554444"}], "amount": "12.70"}
    assert json_safe(entry) == {
        "reason": "paid by **** **** **** 4242",
        "lines": [{"note": "************4444"}],
        "amount": "12.70",
    }


def test_a_tenant_named_with_a_card_number_is_refused_naming_the_field(api, tokens):
    tenant = {
        "tenant_id": f"card-{uuid.uuid4().hex[:8]}",
        "name": f"Acme {CARD}",
        "tier": "lite",
        "currency": "usd",
        "country": "US",
    }
    response = api.post("/api/v1/tenants", json=tenant, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["name"]
    missing = api.get(f"/api/v1/tenants/{tenant['tenant_id']}", headers=auth(tokens["billing-admin"]))
    assert missing.status_code == 404


def test_a_credit_note_reason_with_a_card_number_is_refused_naming_the_field(api, tokens):
    invoice = finalized_lite_invoice(api, tokens, "card-note")
    path = f"/api/v1/invoices/{invoice['invoice_id']}/credit-notes"
    admin = auth(tokens["billing-admin"])
    response = api.post(path, json={"reason": f"refund to card {CARD}", "amount": "1"}, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["reason"]
    assert api.get(path, headers=admin).json()["credit_notes"] == []
