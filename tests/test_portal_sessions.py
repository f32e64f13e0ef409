"""Sign-in for the portal and console (issue 19), over plain HTTP: the link opens a session once,
the cookie's flags, the pages' content policy, CSRF on the API and on forms, and one tenant's
session never reaching another tenant's data. The browser walk is tests/test_portal_browser.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from cli.login_link import link
from serve.auth import mint
from tests.conftest import register_tenant
from tests.stack_support import finalized_lite_invoice


@contextmanager
def signed_in(stack, settings, role: str, tenant_id: str | None = None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        token = mint(settings.jwt_secret, role, tenant_id, 600, f"{role}/link-{uuid.uuid4().hex[:8]}")
        opened = client.get(link(stack.api_url, token))
        assert opened.status_code == 200, opened.text
        yield client


def test_a_link_opens_one_session_with_a_strict_http_only_cookie(stack, settings, api, tokens):
    tenant = register_tenant(api, tokens, f"sess-{uuid.uuid4().hex[:8]}")
    url = link(stack.api_url, mint(settings.jwt_secret, "tenant", tenant, 600))
    with httpx.Client(timeout=30) as browser:
        opened = browser.get(url)
        assert opened.status_code == 200 and 'http-equiv="refresh"' in opened.text
        cookie = opened.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP here; Secure when served over TLS
        page = browser.get(f"{stack.api_url}/portal")
        assert page.status_code == 200 and tenant in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # no inline script at all
        assert browser.get(f"{stack.api_url}/console").status_code == 403  # a tenant is not staff
    with httpx.Client(timeout=30) as replay:
        assert replay.get(url).status_code == 401  # a link opens one session only
        assert replay.get(f"{stack.api_url}/portal").status_code == 401


def test_bad_and_kernel_links_open_nothing(stack, settings):
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        assert client.get("/portal/login?token=not-a-jwt").status_code == 401
        expired = mint(settings.jwt_secret, "viewer", None, -120)
        assert client.get(link(stack.api_url, expired)).status_code == 401
        assert client.get(link(stack.api_url, mint(settings.jwt_secret, "kernel"))).status_code == 403
        assert "set-cookie" not in client.get("/portal/login?token=x").headers


def test_api_calls_with_the_cookie_need_the_csrf_token_and_stay_in_the_tenant(stack, settings, api, tokens):
    own = finalized_lite_invoice(api, tokens, "sess")
    other = finalized_lite_invoice(api, tokens, "sess")
    with signed_in(stack, settings, "tenant", own["tenant_id"]) as client:
        assert client.get(f"/api/v1/invoices/{own['invoice_id']}").status_code == 200
        for path in (
            f"/api/v1/invoices/{other['invoice_id']}",
            f"/api/v1/invoices/{other['invoice_id']}/pdf",
        ):
            assert client.get(path).status_code in (403, 404), path
        body = {"invoice_id": own["invoice_id"], "payment_method": "wire"}
        refused = client.post("/api/v1/payments", json=body)
        assert refused.status_code == 403 and refused.json()["type"].endswith("csrf")
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/portal").text).group(1)
        forged = client.post(f"/portal/invoices/{own['invoice_id']}/pay", data={"csrf": "wrong"})
        assert forged.status_code == 403
        cross = client.post(f"/portal/invoices/{other['invoice_id']}/pay", data={"csrf": csrf, "nonce": "x"})
        assert cross.status_code in (403, 404)
        allowed = client.post("/api/v1/payments", json=body, headers={"X-CSRF-Token": csrf})
        assert allowed.status_code == 201, allowed.text
        assert client.post("/portal/logout", data={"csrf": csrf}).status_code == 200
        assert client.get("/portal").status_code == 401  # the session is gone server-side


@pytest.mark.parametrize("role", ["billing-admin", "finance", "viewer"])
def test_the_console_offers_the_run_action_only_to_roles_that_may_start_one(stack, settings, role):
    with signed_in(stack, settings, role) as client:
        page = client.get("/console")
        assert page.status_code == 200, page.text
        assert ('action="/console/invoice-runs"' in page.text) == (role != "viewer")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        started = client.post("/console/invoice-runs", data={"csrf": csrf, "period": "1999-01"})
        assert started.status_code == (403 if role == "viewer" else 303)
        assert client.get("/portal").status_code == 403  # staff have no tenant portal


def test_the_cli_prints_a_link_that_signs_in(stack, settings, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("BILLING_JWT_SECRET", settings.jwt_secret)
    monkeypatch.setenv("BILLING_HTTP_PORT", str(settings.http_port))
    assert main(["login-link", "--role", "viewer"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{stack.api_url}/portal/login?token=")
    with httpx.Client(timeout=30) as browser:
        assert (
            browser.get(url).status_code == 200 and browser.get(f"{stack.api_url}/console").status_code == 200
        )


@pytest.mark.parametrize("language", ["es", "de", "fr"])
def test_every_page_word_is_translated(language):
    from babel.messages.pofile import read_po

    from serve.page_words import LOCALE_DIR, page_msgids

    with (LOCALE_DIR / language / "LC_MESSAGES" / "portal.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    missing = [msgid for msgid in page_msgids() if not (catalog.get(msgid) and catalog.get(msgid).string)]
    assert missing == []


RUN_STATUSES = ("pending", "running", "completed", "failed")  # invoice_runs_status, migration 0008
DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")  # webhook_deliveries_status, 0016


@pytest.mark.parametrize("language", ["es", "de", "fr"])
def test_status_words_are_translated_and_tell_each_status_apart(language):
    from invoicing.lifecycle import InvoiceStatus
    from payments.lifecycle import PaymentState
    from serve.page_words import STATUS_WORDS, Words

    words, english = Words(language), Words("en")
    kinds = {
        "invoice": [status.value for status in InvoiceStatus],
        "payment": [state.value for state in PaymentState],
        "run": list(RUN_STATUSES),
        "delivery": list(DELIVERY_STATUSES),
    }
    for kind, codes in kinds.items():
        assert set(codes) <= set(STATUS_WORDS), kind  # every status has its words
        shown = [words.status(code) for code in codes]
        assert len(set(shown)) == len(codes), (kind, shown)  # no two statuses look alike
        assert not set(shown) & {english.status(code) for code in codes}, (kind, shown)  # no English left
    assert words.method("wire") != english.method("wire")
    assert words.alert_kind("spend_forecast") != english.alert_kind("spend_forecast")


def test_a_paypal_return_for_an_order_that_is_not_ours_opens_nothing(stack):
    with httpx.Client(base_url=stack.api_url, timeout=30) as browser:
        assert browser.get("/paypal/return?token=NOSUCHORDER").status_code == 404
        cancelled = browser.get("/paypal/cancel?token=NOSUCHORDER")
        assert cancelled.status_code == 200 and "/portal?notice=cancelled" in cancelled.text
