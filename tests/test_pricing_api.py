"""Pricing over HTTP on the real stack: the catalog, price versions, tenant terms, credits, quotes.

The catalog is shared by the whole session, so the one test that changes prices adds a price
for a meter (storage on the shared tier) that no other test here uses.
"""

from __future__ import annotations

import copy
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from pricing.catalog import load_default_catalog
from serve.auth import mint
from tests.conftest import auth

PROBLEM = "application/problem+json"


def new_tenant(api, tokens, tier: str = "shared", currency: str = "usd") -> str:
    tenant = f"pq-{uuid.uuid4().hex[:10]}"
    body = {"tenant_id": tenant, "name": "Pricing Co", "tier": tier, "currency": currency, "country": "US"}
    response = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 201, response.text
    return tenant


def post_usage(api, tokens, tenant: str, **usage: str) -> None:
    event = {
        "tenant_id": tenant,
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": usage,
        "event_id": uuid.uuid4().hex,
    }
    response = api.post("/api/v1/usage", json=event, headers=auth(tokens["kernel"]))
    assert response.status_code == 202, response.text


def quote(api, token: str, tenant: str, **params: str) -> dict:
    response = api.get(f"/api/v1/tenants/{tenant}/quote", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def quote_once_usage_shows(api, token: str, tenant: str, subtotal: str, timeout_s: float = 15) -> dict:
    """The quote, once the usage just posted is visible (live usage shows within about a second)."""
    deadline = time.monotonic() + timeout_s
    while (body := quote(api, token, tenant))["subtotal"] != subtotal:
        assert time.monotonic() < deadline, f"quote stuck at {body['subtotal']}, wanted {subtotal}"
        time.sleep(0.05)
    return body


def amounts_by_meter(body: dict) -> dict[str, str]:
    return {line["meter"]: line["amount"] for line in body["lines"] if line["kind"] == "usage"}


def tenant_token(settings, tenant: str) -> str:
    return mint(settings.jwt_secret, "tenant", tenant_id=tenant)


def assert_problem(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    if field is not None:
        assert [e["field"] for e in response.json()["errors"]] == [field], response.text


def this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def away_from_the_hour_boundary(margin_s: int = 20) -> None:
    """Usage and a price change made in the same test must fall in the same hour."""
    left = (this_hour() + timedelta(hours=1) - datetime.now(UTC)).total_seconds()
    if left < margin_s:
        time.sleep(left + 1)


# --- catalog -----------------------------------------------------------------------------------


def test_staff_read_the_catalog_which_starts_as_the_pricing_sheet(api, tokens):
    sheet = load_default_catalog().to_json()
    for role in ("billing-admin", "finance", "viewer"):
        response = api.get("/api/v1/catalog", headers=auth(tokens[role]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert {k: body[k] for k in ("catalog", "currency", "units")} == {
            k: sheet[k] for k in ("catalog", "currency", "units")
        }
        assert body["versions"][0] == sheet["versions"][0]
        assert body["revision"] >= 1 and body["in_force"]
    for role in ("tenant", "kernel"):
        assert_problem(api.get("/api/v1/catalog", headers=auth(tokens[role])), 403)
    assert_problem(api.get("/api/v1/catalog"), 401)


def a_version(**changes) -> dict:
    version = copy.deepcopy(load_default_catalog().to_json()["versions"][0])
    version.update(
        version=f"test-{uuid.uuid4().hex[:8]}", effective_from=(this_hour() + timedelta(days=400)).isoformat()
    )
    version.update(changes)
    return version


def shared_cpu_price(**spec) -> dict:
    version = a_version()
    version["plans"]["shared"]["prices"]["cpu_seconds"] = {"currency": "usd", **spec}
    return version


@pytest.mark.parametrize(
    ("version", "field"),
    [
        (shared_cpu_price(unit_amount_decimal="abc"), "plans.shared.prices.cpu_seconds.unit_amount_decimal"),
        (shared_cpu_price(unit_amount_decimal="-1"), "plans.shared.prices.cpu_seconds.unit_amount_decimal"),
        (
            shared_cpu_price(
                billing_scheme="tiered",
                tiers_mode="graduate",
                tiers=[{"up_to": "inf", "unit_amount_decimal": "1"}],
            ),
            "plans.shared.prices.cpu_seconds.tiers_mode",
        ),
        ({**shared_cpu_price(unit_amount_decimal="5")} | {"plans": {}}, "plans.zero"),
        (a_version(effective_from="2024-01-01T00:00:00Z"), "effective_from"),
        (a_version(effective_from=(this_hour() - timedelta(hours=2)).isoformat()), "effective_from"),
        (
            a_version(version="2024-01", effective_from="2031-01-01T00:00:00Z"),
            None,
        ),  # same id, other prices: 409
    ],
)
def test_a_bad_price_version_is_refused_naming_the_field(api, tokens, version, field):
    response = api.post("/api/v1/catalog/versions", json=version, headers=auth(tokens["billing-admin"]))
    assert_problem(response, 422 if field else 409, field)


def test_price_versions_need_billing_admin_and_json(api, tokens):
    bad = shared_cpu_price(unit_amount_decimal="abc")
    for role in ("finance", "viewer", "tenant", "kernel"):  # refused before the body is read
        assert_problem(api.post("/api/v1/catalog/versions", json=bad, headers=auth(tokens[role])), 403)
    assert_problem(api.post("/api/v1/catalog/versions", json=bad), 401)
    admin = {**auth(tokens["billing-admin"]), "content-type": "application/json"}
    for body in (b"{not json", b'{"version": NaN}', b"[]"):
        assert_problem(api.post("/api/v1/catalog/versions", content=body, headers=admin), 422, "body")


def test_a_price_change_counts_from_the_very_next_quote(api, tokens, stack):
    away_from_the_hour_boundary()
    tenant = new_tenant(api, tokens)
    post_usage(api, tokens, tenant, cpu_seconds="3600", storage_gb_hours="1000")
    before = quote_once_usage_shows(api, tokens["viewer"], tenant, "0.05")  # storage is not priced yet
    catalog = api.get("/api/v1/catalog", headers=auth(tokens["viewer"])).json()
    cache = redis.Redis.from_url(stack.settings.redis_url)
    old_keys = cache.keys(f"{stack.settings.redis_prefix}:pricing:catalog:*:{catalog['revision']}.*")
    assert len(old_keys) == 1 and before["revisions"]["catalog"] == catalog["revision"]

    version = copy.deepcopy(catalog["versions"][-1])
    version.update(version=f"storage-{uuid.uuid4().hex[:8]}", effective_from=this_hour().isoformat())
    version["plans"]["shared"]["prices"]["storage_gb_hours"] = {
        "currency": "usd",
        "unit_amount_decimal": "0.5",
    }
    created = api.post("/api/v1/catalog/versions", json=version, headers=auth(tokens["billing-admin"]))
    assert created.status_code == 201, created.text
    assert created.json()["revision"] == catalog["revision"] + 1

    after = quote(api, tokens["viewer"], tenant)  # at once: no waiting for anything to expire
    assert amounts_by_meter(after) == {"cpu_seconds": "0.05", "storage_gb_hours": "5.00"}
    assert (after["subtotal"], after["revisions"]["catalog"]) == ("5.05", catalog["revision"] + 1)
    # The old entry was never deleted, and it did not matter: readers ask for the new generation.
    assert all(cache.exists(key) for key in old_keys)

    again = api.post("/api/v1/catalog/versions", json=version, headers=auth(tokens["billing-admin"]))
    assert again.status_code == 200 and again.json()["revision"] == catalog["revision"] + 1  # a retry
    version["plans"]["shared"]["prices"]["storage_gb_hours"]["unit_amount_decimal"] = "0.6"
    assert_problem(
        api.post("/api/v1/catalog/versions", json=version, headers=auth(tokens["billing-admin"])), 409
    )


# --- quotes ------------------------------------------------------------------------------------


def test_a_shared_tenant_quote_is_exact_to_the_cent(api, tokens, settings):
    tenant = new_tenant(api, tokens)
    post_usage(api, tokens, tenant, cpu_seconds="7200", memory_gb_hours="100")
    body = quote_once_usage_shows(api, tokens["viewer"], tenant, "1.10")
    assert amounts_by_meter(body) == {"cpu_seconds": "0.10", "memory_gb_hours": "1.00"}
    assert (body["tier"], body["currency"], body["amount_due"]) == ("shared", "usd", "1.10")
    assert body["credits"] == {"currency": "usd", "balance": "0.00", "applied": "0.00"}
    now = datetime.now(UTC)
    assert body["period"]["start"] == f"{now:%Y-%m}-01T00:00:00Z"

    assert quote(api, tenant_token(settings, tenant), tenant)["subtotal"] == "1.10"  # its own
    for token in (tokens["tenant"], tokens["kernel"]):  # another tenant's token; not a reader
        assert_problem(api.get(f"/api/v1/tenants/{tenant}/quote", headers=auth(token)), 403)
    assert_problem(api.get(f"/api/v1/tenants/{tenant}/quote"), 401)
    assert_problem(api.get("/api/v1/tenants/pq-nobody/quote", headers=auth(tokens["viewer"])), 404)
    for month in ("2026-13", "2023-12"):  # no such month; before the first catalog version
        response = api.get(
            f"/api/v1/tenants/{tenant}/quote", params={"month": month}, headers=auth(tokens["viewer"])
        )
        assert_problem(response, 422, "month")


# --- tenant pricing settings -------------------------------------------------------------------


def month_contract(**terms) -> dict:
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "contract_id": "c-1",
        "effective_from": start.isoformat(),
        "minimum_monthly_decimal": "0",
        "rates": {"cpu_seconds": {"currency": "usd", "unit_amount_decimal": "2"}},
        **terms,
    }


def test_assigning_a_tier_or_contract_counts_from_the_very_next_quote(api, tokens, settings):
    tenant = new_tenant(api, tokens)
    admin = auth(tokens["billing-admin"])
    post_usage(api, tokens, tenant, cpu_seconds="7200")
    quote_once_usage_shows(api, tokens["viewer"], tenant, "0.10")
    read = api.get(f"/api/v1/tenants/{tenant}/pricing", headers=auth(tenant_token(settings, tenant)))
    assert read.json() == {
        "tenant_id": tenant,
        "tier": "shared",
        "contracts": [],
        "licence": None,
        "revision": 0,
    }

    zero = api.put(f"/api/v1/tenants/{tenant}/pricing", json={"tier": "zero"}, headers=admin)
    assert (zero.status_code, zero.json()["revision"]) == (200, 1)
    body = quote(api, tokens["viewer"], tenant)  # zero prices executions and egress, not CPU
    assert (body["subtotal"], body["tier"], body["revisions"]["tenant_pricing"]) == ("0.00", "zero", 1)
    assert api.get(f"/api/v1/tenants/{tenant}", headers=admin).json()["tier"] == "zero"  # kept in step

    contract = {"tier": "enterprise", "contracts": [month_contract(discount_percent="50")]}
    assert api.put(f"/api/v1/tenants/{tenant}/pricing", json=contract, headers=admin).json()["revision"] == 2
    body = quote(api, tokens["finance"], tenant)
    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("usage", "0.04"),
        ("discount", "-0.02"),
    ]
    assert (body["subtotal"], body["tier"], body["revisions"]["tenant_pricing"]) == ("0.02", "enterprise", 2)
    same = api.put(f"/api/v1/tenants/{tenant}/pricing", json=contract, headers=admin)
    assert same.json()["revision"] == 2  # nothing changed, nothing bumped
    stored = api.get(f"/api/v1/tenants/{tenant}/pricing", headers=auth(tokens["viewer"])).json()
    assert (stored["tier"], stored["contracts"][0]["contract_id"], stored["revision"]) == (
        "enterprise",
        "c-1",
        2,
    )


@pytest.mark.parametrize(
    ("settings_body", "field"),
    [
        (
            {
                "tier": "enterprise",
                "contracts": [
                    month_contract(rates={"cpu_seconds": {"currency": "usd", "unit_amount_decimal": "x"}})
                ],
            },
            "contracts[0].rates.cpu_seconds.unit_amount_decimal",
        ),
        (
            {
                "tier": "enterprise",
                "contracts": [
                    month_contract(rates={"cpu_seconds": {"currency": "eur", "unit_amount_decimal": "2"}})
                ],
            },
            "contracts[0].rates.cpu_seconds.currency",
        ),
        ({"tier": "shared", "contracts": [month_contract()]}, "contracts"),
        ({"tier": "airgapped"}, "licence"),
        ({"tier": "gold"}, "tier"),
        ({"tier": "shared", "tenant_id": "someone-else"}, "tenant_id"),
        ({"tier": "shared", "discount": "5"}, "discount"),
    ],
)
def test_bad_tenant_pricing_is_refused_naming_the_field(api, tokens, settings_body, field):
    tenant = new_tenant(api, tokens)
    response = api.put(
        f"/api/v1/tenants/{tenant}/pricing", json=settings_body, headers=auth(tokens["billing-admin"])
    )
    assert_problem(response, 422, field)


def test_tenant_pricing_roles_and_unknown_tenants(api, tokens):
    tenant = new_tenant(api, tokens)
    for role in ("finance", "viewer", "tenant", "kernel"):
        response = api.put(
            f"/api/v1/tenants/{tenant}/pricing", json={"tier": "zero"}, headers=auth(tokens[role])
        )
        assert_problem(response, 403)
    assert_problem(api.get(f"/api/v1/tenants/{tenant}/pricing", headers=auth(tokens["tenant"])), 403)
    missing = api.put(
        "/api/v1/tenants/pq-nobody/pricing", json={"tier": "zero"}, headers=auth(tokens["billing-admin"])
    )
    assert_problem(missing, 404)


def test_an_airgapped_tenant_is_quoted_once_it_has_a_licence(api, tokens):
    tenant = new_tenant(api, tokens, tier="airgapped")
    assert_problem(api.get(f"/api/v1/tenants/{tenant}/quote", headers=auth(tokens["viewer"])), 409)
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    licence = {"tier": "airgapped", "licence": {"licence_id": "lic-1", "starts": start.isoformat()}}
    response = api.put(
        f"/api/v1/tenants/{tenant}/pricing", json=licence, headers=auth(tokens["billing-admin"])
    )
    assert response.status_code == 200, response.text
    lines = quote(api, tokens["viewer"], tenant)["lines"]
    assert (lines[0]["kind"], lines[0]["amount"]) == ("licence", "50000.00")
    assert [line["kind"] for line in lines] == ["licence", "support"]


# --- credits -----------------------------------------------------------------------------------


def test_credits_reduce_the_amount_due_and_never_below_zero(api, tokens, settings):
    tenant = new_tenant(api, tokens)
    credits = f"/api/v1/tenants/{tenant}/credits"
    post_usage(api, tokens, tenant, cpu_seconds="7200", memory_gb_hours="100")
    quote_once_usage_shows(api, tokens["viewer"], tenant, "1.10")

    promo = {"grant_id": f"{tenant}-promo", "amount": "0.50", "kind": "promotional"}
    granted = api.post(credits, json=promo, headers=auth(tokens["finance"]))
    assert granted.status_code == 201, granted.text
    assert granted.json()["balance"] == "0.50" and granted.json()["grant"]["amount"] == "0.50"
    body = quote(api, tokens["viewer"], tenant)
    assert (body["subtotal"], body["credits"]["applied"], body["amount_due"]) == ("1.10", "0.50", "0.60")

    prepaid = {"amount": "5", "kind": "prepaid", "currency": "USD"}
    assert api.post(credits, json=prepaid, headers=auth(tokens["billing-admin"])).status_code == 201
    body = quote(api, tenant_token(settings, tenant), tenant)
    assert body["credits"] == {"currency": "usd", "balance": "5.50", "applied": "1.10"}
    assert body["amount_due"] == "0.00"  # credit beyond the charges stays in the ledger

    assert api.post(credits, json=promo, headers=auth(tokens["finance"])).status_code == 200  # a retry
    assert_problem(api.post(credits, json={**promo, "amount": "0.60"}, headers=auth(tokens["finance"])), 409)
    ledger = api.get(credits, headers=auth(tenant_token(settings, tenant))).json()
    assert (ledger["balance"], ledger["currency"]) == ("5.50", "usd")  # a quote draws nothing
    assert [(e["type"], e["amount"], e["kind"]) for e in ledger["entries"]] == [
        ("grant", "0.50", "promotional"),
        ("grant", "5.00", "prepaid"),
    ]


@pytest.mark.parametrize(
    ("grant", "field"),
    [
        ({"amount": "0.001", "kind": "prepaid"}, "amount"),
        ({"amount": "0", "kind": "prepaid"}, "amount"),
        ({"amount": 1.5, "kind": "prepaid"}, "amount"),  # a JSON number could be a binary float
        ({"amount": "1", "kind": "prepaid", "currency": "eur"}, "currency"),
        ({"amount": "1", "kind": "gift"}, "kind"),
        ({"amount": "1", "kind": "prepaid", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"amount": "1", "kind": "prepaid", "expires_at": "2099-01-01T00:00:00"}, "expires_at"),  # no offset
    ],
)
def test_a_bad_grant_is_refused_naming_the_field(api, tokens, grant, field):
    tenant = new_tenant(api, tokens)
    response = api.post(f"/api/v1/tenants/{tenant}/credits", json=grant, headers=auth(tokens["finance"]))
    assert_problem(response, 422, field)


def test_credit_roles_and_tenants(api, tokens, settings):
    tenant = new_tenant(api, tokens)
    credits = f"/api/v1/tenants/{tenant}/credits"
    grant = {"amount": "1", "kind": "prepaid"}
    for role in ("viewer", "tenant", "kernel"):
        assert_problem(api.post(credits, json=grant, headers=auth(tokens[role])), 403)
    assert_problem(api.post(credits, json=grant, headers=auth(tenant_token(settings, tenant))), 403)
    assert_problem(api.get(credits, headers=auth(tokens["tenant"])), 403)  # someone else's ledger
    assert_problem(api.get(credits), 401)
    assert_problem(
        api.post("/api/v1/tenants/pq-nobody/credits", json=grant, headers=auth(tokens["finance"])), 404
    )
    assert api.get(credits, headers=auth(tokens["viewer"])).json()["entries"] == []
