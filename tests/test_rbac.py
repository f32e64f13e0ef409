"""The RBAC matrix: every route of the OpenAPI spec, called with every role, another tenant's
token and no token, answers exactly as serve/access.py's table says. "Allowed" means anything but
401/403 (the bodies sent are deliberately incomplete, so an allowed call is refused later, with
a 4xx naming the field, and changes nothing); "denied" means 403, and no token means 401."""

from __future__ import annotations

import uuid

import pytest

from serve.access import ACCESS, PUBLIC
from serve.auth import mint
from tests.conftest import auth

OWN, OTHER = f"rbac-{uuid.uuid4().hex[:8]}", "tenant-b"  # a lite tenant of the test's own


@pytest.fixture(scope="module")
def objects(api, tokens, settings) -> dict[str, str]:
    """The test's tenant with a finalized invoice (99.00 of lite base fee), a credit note of it and
    a pending wire payment of it."""
    admin = auth(tokens["billing-admin"])
    body = {"tenant_id": OWN, "name": OWN, "tier": "lite", "currency": "usd", "country": "US"}
    assert api.post("/api/v1/tenants", json=body, headers=admin).status_code == 201
    request = {"tenant_id": OWN, "period_start": "2025-03-01T00:00:00Z", "period_end": "2025-04-01T00:00:00Z"}
    invoice = api.post("/api/v1/invoices", json=request, headers=admin).json()
    api.post(f"/api/v1/invoices/{invoice['invoice_id']}/finalize", headers=admin)
    pay = {"invoice_id": invoice["invoice_id"], "payment_method": "wire"}
    payment = api.post(
        "/api/v1/payments", json=pay, headers=admin | {"Idempotency-Key": f"rbac-{uuid.uuid4()}"}
    )
    note = api.post(
        f"/api/v1/invoices/{invoice['invoice_id']}/credit-notes", json={"reason": "rbac", "amount": "1"}, headers=admin
    )
    return {
        "tenant_id": OWN,
        "invoice_id": invoice["invoice_id"],
        "credit_note_id": note.json()["credit_note_id"],
        "payment_id": payment.json()["payment_id"],
        "run_id": str(uuid.uuid4()),
        # Only the lifecycle's verbs are routes (another word is 404 for everyone); this one leaves
        # the invoice payable for the routes checked after it.
        "action": "mark-uncollectible",
        **_notifications(api, admin, settings),
    }


def _notifications(api, admin, settings) -> dict[str, str]:
    """OWN's webhook endpoint with one delivery, and an alert (issue 17)."""
    from tests.notifications.support import Receiver, record_events

    receiver = Receiver().start()  # answers 200; stays up for the session
    body = {"url": receiver.url, "event_types": ["*"], "tenant_id": OWN}
    endpoint = api.post("/api/v1/webhook-endpoints", json=body, headers=admin).json()
    record_events(settings, [("invoice.paid", OWN, {"invoice_id": "rbac"})])
    delivery = api.get("/api/v1/webhook-deliveries", params={"endpoint_id": endpoint["id"]}, headers=admin)
    alert = api.post(f"/api/v1/tenants/{OWN}/alerts", json={"kind": "spend", "threshold": "1"}, headers=admin)
    return {
        "endpoint_id": endpoint["id"],
        "delivery_id": delivery.json()["deliveries"][0]["id"],
        "alert_id": alert.json()["id"],
    }


def _callers(settings, tokens) -> dict[str, tuple[str | None, frozenset[str]]]:
    """caller -> (token, the roles it stands for in the table)."""
    callers = {
        role: (tokens[role], frozenset({role})) for role in ("kernel", "billing-admin", "finance", "viewer")
    }
    callers["tenant (own)"] = (mint(settings.jwt_secret, "tenant", tenant_id=OWN), frozenset({"tenant"}))
    callers["tenant (other)"] = (mint(settings.jwt_secret, "tenant", tenant_id=OTHER), frozenset({"tenant"}))
    callers["no token"] = (None, frozenset())
    return callers


def _expected(rule, caller: str, roles: frozenset[str]) -> str:
    if caller == "no token":
        return "401"
    allowed = ("usage:write" == rule.scope and "kernel" in roles) if rule.scope else bool(rule.roles & roles)
    if allowed and caller == "tenant (other)":
        return "403"  # a tenant never reads or acts on another tenant's data
    return "allowed" if allowed else "403"


def _call(api, method: str, path: str, objects: dict[str, str], token: str | None):
    url = path.format(**objects)
    headers = {} if token is None else auth(token)
    params = {"tenant_id": OWN} if (method, path) == ("GET", "/api/v1/invoices") else {}
    if (method, path) == ("GET", "/api/v1/webhook-endpoints"):  # a tenant lists its own: ask for OWN's
        params = {"tenant_id": OWN}
    if (method, path) == ("GET", "/api/v1/webhook-deliveries"):
        params = {"endpoint_id": objects["endpoint_id"]}
    body: dict = {"tenant_id": OWN} if (method, path) == ("POST", "/api/v1/webhook-endpoints") else {}
    if (method, path) == ("POST", "/api/v1/payments"):
        body = {
            "invoice_id": objects["invoice_id"],
            "payment_method": "wire",
        }  # ownership needs a real invoice
    return api.request(method, url, headers=headers, params=params, json=body)


def test_every_route_answers_every_caller_as_the_table_says(api, tokens, settings, objects):
    spec = api.get("/openapi.json").json()
    operations = [(method.upper(), path) for path, item in spec["paths"].items() for method in item]
    assert {op for op in operations if op not in PUBLIC} == set(ACCESS)  # the spec and the table agree
    mismatches, cells = [], 0
    for method, path in sorted(set(ACCESS)):
        for caller, (token, roles) in _callers(settings, tokens).items():
            wanted = _expected(ACCESS[(method, path)], caller, roles)
            status = _call(api, method, path, objects, token).status_code
            got = "allowed" if status not in (401, 403) else str(status)
            cells += 1
            if got != wanted:
                mismatches.append(f"{method} {path} as {caller}: {status}, expected {wanted}")
    assert mismatches == [], "\n".join(mismatches)
    assert cells == len(ACCESS) * 7
