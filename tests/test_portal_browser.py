"""The tenant portal and the finance console in a real browser (issue 19): headless Chromium
(Debian's) driven by Playwright, every request to a host other than 127.0.0.1 aborted.

A tenant opens its sign-in link, sees its usage rise after usage is posted, downloads an invoice
PDF, pays the invoice through the local Stripe sandbox and sees it paid; another pays through the
local PayPal (approving at PayPal's page and coming back) and sees it paid; a tenant with a trained
forecast sees its projected month end and the 90% band drawn; a keyboard alone reaches and works
the downloads and the pay button, with the focus visible; another tenant's invoice is refused; the
console shows an invoice run reach 100%; axe-core finds no serious or critical violation on either
page. Screenshots of each page go to one directory, printed at the end.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cli.login_link import link
from serve.auth import mint
from tests.chromium import ARGS, CHROMIUM
from tests.conftest import auth
from tests.stack_support import finalized_lite_invoice, sql

# Issue 19's 1 s on the demo data is measured by bench/pages.py, not asserted here: a timed test
# fails on a loaded machine and proves nothing on a quiet one. The tests print what they saw.
RUN_PERIOD = "2024-11"  # a month no other test invoices: the console's run invoices every tenant


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian's chromium; .ci/run installs it)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("portal-screenshots")
    yield directory
    print(f"\nportal screenshots: {directory}")


class Offline:
    """A browser context that reaches 127.0.0.1 only, and records what it refused and any
    message the page logged about its content policy."""

    def __init__(self, browser) -> None:
        self.blocked: list[str] = []
        self.policy_errors: list[str] = []
        self.context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._only_local)

    def _only_local(self, route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def sign_in(self, stack, settings, role: str, tenant_id: str | None = None, expect: str = "/portal"):
        page = self.context.new_page()
        page.on(
            "console", lambda m: "Content Security Policy" in m.text and self.policy_errors.append(m.text)
        )
        token = mint(settings.jwt_secret, role, tenant_id, 600, f"{role}/link-{uuid.uuid4().hex[:8]}")
        page.goto(link(stack.api_url, token))
        page.wait_for_url(f"**{expect}", timeout=15_000)  # the sign-in page moves on by itself
        page.wait_for_load_state("load")
        return page


def _no_serious_violations(page) -> None:
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations
               if v["impact"] in ("serious", "critical")]  # fmt: skip
    assert serious == [], serious


def _interactive_ms(page) -> float:
    """How long a warm load of the page takes to become interactive (the first load of a fresh
    process also compiles its templates and catalogs)."""
    page.reload(wait_until="load")
    return page.evaluate("performance.getEntriesByType('navigation')[0].domInteractive")


def _post_usage(api, tokens, tenant_id: str, cpu_seconds: str) -> None:
    event = {
        "tenant_id": tenant_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "event_id": f"portal-{uuid.uuid4().hex}",
        "usage": {"cpu_seconds": cpu_seconds},
    }
    response = api.post("/api/v1/usage", json={"events": [event]}, headers=auth(tokens["kernel"]))
    assert response.status_code == 202, response.text


def test_a_tenant_sees_usage_rise_downloads_and_pays_its_invoice(
    browser, stack, settings, api, tokens, shots
):
    invoice = finalized_lite_invoice(api, tokens, "portal")
    tenant_id, number = invoice["tenant_id"], invoice["number"]
    card = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    attached = api.post(
        f"/api/v1/tenants/{tenant_id}/payment-methods", json=card, headers=auth(tokens["billing-admin"])
    )
    assert attached.status_code == 204, attached.text
    other = finalized_lite_invoice(api, tokens, "portal-other")
    _post_usage(api, tokens, tenant_id, "1800")  # some usage before the page opens

    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "tenant", tenant_id)
    assert page.locator("h1").inner_text() == tenant_id
    interactive = _interactive_ms(page)
    cpu_hour = page.locator('#usage-table tr[data-meter="cpu_seconds"] td[data-cell="hour"]')
    page.locator("#usage-chart canvas").wait_for(timeout=15_000)  # the first poll has drawn the chart
    before = float(cpu_hour.inner_text().replace(",", ""))

    _post_usage(api, tokens, tenant_id, "3600")
    deadline = time.monotonic() + 45
    while float(cpu_hour.inner_text().replace(",", "")) < before + 3600 and time.monotonic() < deadline:
        page.wait_for_timeout(500)  # the page polls every 3 s; nothing here reloads it
    assert float(cpu_hour.inner_text().replace(",", "")) == before + 3600
    page.screenshot(path=shots / "1-portal-usage.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name=f"PDF {number}").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF") and download.value.suggested_filename.endswith(".pdf")

    page.get_by_role("button", name=f"Pay by card {number}").click()
    page.wait_for_load_state("load")
    assert "/portal?notice=paid" in page.url, (page.url, page.locator("main").inner_text()[:500])
    row = page.locator(f'tr[data-invoice="{invoice["invoice_id"]}"]')
    assert row.locator("[data-status]").get_attribute("data-status") == "paid"
    assert row.get_by_role("button").count() == 0  # nothing left to pay
    assert (
        api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=auth(tokens["finance"])).json()["status"]
        == "paid"
    )
    page.screenshot(path=shots / "2-portal-paid.png", full_page=True)
    _no_serious_violations(page)

    for path in (f"/api/v1/invoices/{other['invoice_id']}", f"/api/v1/invoices/{other['invoice_id']}/pdf"):
        refused = page.request.get(f"{stack.api_url}{path}")  # with this tenant's session cookie
        assert refused.status in (403, 404), (path, refused.status)
    shown = page.goto(f"{stack.api_url}/api/v1/invoices/{other['invoice_id']}")
    assert shown.status in (403, 404)
    assert page.goto(f"{stack.api_url}/console").status == 403
    page.screenshot(path=shots / "3-portal-refused.png", full_page=True)

    german = page.goto(f"{stack.api_url}/portal?lang=de")
    assert german.status == 200 and page.locator("#invoices-h").inner_text() == "Rechnungen"
    page.locator("#usage-chart canvas").wait_for(timeout=15_000)
    page.screenshot(path=shots / "4-portal-de.png", full_page=True)
    assert offline.blocked == [] and offline.policy_errors == [], (offline.blocked, offline.policy_errors)
    print(f"\nportal interactive after {interactive:.0f} ms")
    offline.context.close()


def test_the_console_shows_an_invoice_run_reach_100_percent(browser, stack, settings, api, tokens, shots):
    finalized_lite_invoice(api, tokens, "console")  # at least one tenant to invoice
    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "finance", expect="/console")
    interactive = _interactive_ms(page)
    page.get_by_label("Month").fill(RUN_PERIOD)
    page.get_by_label("Finalize invoices").uncheck()  # drafts only: no numbers spent on a test month
    page.get_by_label("Render PDFs").uncheck()
    page.get_by_role("button", name="Start invoice run").click()
    page.wait_for_url("**/console?notice=started*")
    row = page.locator("#runs-table tbody tr").filter(has_text=RUN_PERIOD).first
    row.locator('[data-cell="percent"]').filter(has_text="100%").wait_for(timeout=120_000)
    status = row.locator('[data-cell="status"]')
    assert (status.get_attribute("data-status"), status.inner_text()) == ("completed", "Completed")
    # A payment taken meanwhile shows in its panel without a reload (nothing here reloads).
    paid = finalized_lite_invoice(api, tokens, "console-paid")
    card = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    admin = auth(tokens["billing-admin"])
    assert (
        api.post(f"/api/v1/tenants/{paid['tenant_id']}/payment-methods", json=card, headers=admin).status_code
        == 204
    )
    payment = api.post(
        "/api/v1/payments", json={"invoice_id": paid["invoice_id"], "payment_method": "stripe"}, headers=admin
    )
    assert payment.status_code == 201 and payment.json()["status"] == "completed", payment.text
    page.locator('section[data-live="payments"] tr').filter(has_text=paid["tenant_id"]).wait_for(
        timeout=20_000
    )
    page.screenshot(path=shots / "5-console-run-done.png", full_page=True)
    _no_serious_violations(page)

    viewer = offline.sign_in(stack, settings, "viewer", expect="/console")
    assert viewer.get_by_role("button", name="Start invoice run").count() == 0  # a viewer may not
    viewer.goto(f"{stack.api_url}/console?lang=de")
    german = viewer.locator("#runs-table tbody tr").filter(has_text=RUN_PERIOD).first
    assert german.locator('[data-cell="status"]').inner_text() == "Abgeschlossen"  # completed, in German
    viewer.screenshot(path=shots / "6-console-viewer.png", full_page=True)
    assert offline.blocked == [] and offline.policy_errors == [], (offline.blocked, offline.policy_errors)
    print(f"\nconsole interactive after {interactive:.0f} ms")
    offline.context.close()


def test_a_tenant_pays_through_paypal_and_sees_the_invoice_paid(
    browser, stack, settings, api, tokens, paypal_server, shots
):
    invoice = finalized_lite_invoice(api, tokens, "portal-paypal")
    number = invoice["number"]
    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "tenant", invoice["tenant_id"])
    page.get_by_role("button", name=f"Pay with PayPal {number}").click()
    # To PayPal's approval page (the local one), which approves and sends the payer back to
    # /paypal/return; that captures the order and moves on to the portal.
    page.wait_for_url("**/portal?notice=paid*", timeout=30_000)
    assert page.get_by_role("status").filter(has_text="The invoice is paid").count() == 1
    row = page.locator(f'tr[data-invoice="{invoice["invoice_id"]}"]')
    assert row.locator("[data-status]").get_attribute("data-status") == "paid"
    assert row.get_by_role("button").count() == 0
    order = next(
        o
        for o in paypal_server.orders.values()
        if o["purchase_units"][0]["custom_id"] == invoice["invoice_id"]
    )
    assert [c.succeeded for c in paypal_server.charges if c.order_id == order["id"]] == [True]
    finance = auth(tokens["finance"])
    assert api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=finance).json()["status"] == "paid"
    page.screenshot(path=shots / "7-portal-paid-by-paypal.png", full_page=True)

    # PayPal's webhook for the same approval comes after: the order is not captured twice.
    approved = next(
        e for e in paypal_server.events
        if e["event_type"] == "CHECKOUT.ORDER.APPROVED" and e["resource"]["id"] == order["id"]
    )  # fmt: skip
    assert paypal_server.deliver(approved, f"{stack.api_url}/api/v1/webhooks/paypal") == 200
    assert len([c for c in paypal_server.charges if c.order_id == order["id"]]) == 1
    assert offline.blocked == [] and offline.policy_errors == [], (offline.blocked, offline.policy_errors)
    offline.context.close()


def test_a_payer_who_cancels_at_paypal_can_pay_the_invoice_another_way(
    browser, stack, settings, api, tokens, paypal_server
):
    invoice = finalized_lite_invoice(api, tokens, "portal-cancel")
    tenant_id, number = invoice["tenant_id"], invoice["number"]
    card = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    admin = auth(tokens["billing-admin"])
    assert api.post(f"/api/v1/tenants/{tenant_id}/payment-methods", json=card, headers=admin).status_code == 204
    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "tenant", tenant_id)
    # On PayPal's page (the local one, told so by the URL) the payer cancels instead of approving.
    page.route(
        f"{paypal_server.url}/checkoutnow*",
        lambda route: route.continue_(url=route.request.url + "&outcome=cancelled"),
    )
    page.get_by_role("button", name=f"Pay with PayPal {number}").click()
    page.wait_for_url("**/portal?notice=cancelled*", timeout=30_000)
    order = next(
        o for o in paypal_server.orders.values() if o["purchase_units"][0]["custom_id"] == invoice["invoice_id"]
    )
    query = "SELECT status FROM payments WHERE invoice_id = :i"
    with ThreadPoolExecutor(1) as outside:  # off Playwright's event loop
        statuses = outside.submit(sql, settings, query, i=invoice["invoice_id"]).result()
    assert [row.status for row in statuses] == ["abandoned"]
    assert api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=admin).json()["status"] == "finalized"

    # Pending, it refused every new attempt ("already in progress"); abandoned, a card pays.
    page.get_by_role("button", name=f"Pay by card {number}").click()
    page.wait_for_url("**/portal?notice=paid*", timeout=30_000)
    assert api.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=admin).json()["status"] == "paid"
    assert [c for c in paypal_server.charges if c.order_id == order["id"]] == []  # PayPal took nothing
    assert offline.blocked == [] and offline.policy_errors == [], (offline.blocked, offline.policy_errors)
    offline.context.close()


def test_the_portal_states_and_draws_the_projected_month_end_band(
    browser, stack, settings, api, tokens, shots
):
    from forecasting.generator import HistorySpec
    from forecasting.generator_store import generate
    from forecasting.usage_run import run_usage_forecast
    from serve.page_words import Words

    # A few US tenants with nine months of history (fixed dates), forecast from the history's end.
    spec = HistorySpec(
        prefix=f"portalfc{uuid.uuid4().hex[:6]}-", tenants=6, seed=5, hours_per_day=1,
        locales=(("US", "usd", "us-east"),),
    )  # fmt: skip

    def history_and_forecast():
        generate(stack.settings, spec)
        return run_usage_forecast(
            stack.settings, prefix=spec.prefix, origin=spec.end, parallel=True, backtest=False
        )

    # In a thread of its own: both run an event loop, and Playwright's runs in this one.
    with ThreadPoolExecutor(1) as worker:
        run = worker.submit(history_and_forecast).result()
    # A tenant whose month end is uncertain (usage-priced: a band of some width).
    tenant, projected = next(
        (t, p)
        for t in run.ids
        if (p := _projection(api, tokens, t)) and Decimal(p["upper"]) > Decimal(p["lower"])
    )

    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "tenant", tenant)
    english = Words("en")
    shown = {part: page.locator(f"#projected-{part}").inner_text() for part in ("subtotal", "lower", "upper")}
    assert shown == {
        "subtotal": english.money(projected["subtotal"], projected["currency"]),
        "lower": english.money(projected["lower"], projected["currency"]),
        "upper": english.money(projected["upper"], projected["currency"]),
    }
    assert "90% band" in page.locator("#projected-band").inner_text()
    assert english.month(projected["period_start"]) in page.locator("#projection dt").inner_text()
    scale = page.locator("#projection .band-scale").bounding_box()
    band = page.locator("#projection .band-range").bounding_box()
    mark = page.locator("#projection .band-mark").bounding_box()
    # Drawn to scale: the band as wide as upper - lower on a scale from 0 to 1.1 x the top, the
    # projection's mark inside it.
    top = max(Decimal(projected["upper"]), Decimal(projected["subtotal"]), Decimal(1)) * Decimal("1.1")
    expected_width = float((Decimal(projected["upper"]) - Decimal(projected["lower"])) / top) * scale["width"]
    assert band["width"] == pytest.approx(expected_width, abs=1.5) and band["width"] > 0
    assert band["x"] - 2 <= mark["x"] <= band["x"] + band["width"] + 2
    page.locator("#charges-h").scroll_into_view_if_needed()
    page.screenshot(path=shots / "8-portal-forecast-band.png", full_page=True)
    _no_serious_violations(page)
    offline.context.close()


def _projection(api, tokens, tenant_id: str) -> dict | None:
    forecast = api.get(f"/api/v1/tenants/{tenant_id}/forecast", headers=auth(tokens["finance"]))
    assert forecast.status_code in (200, 404), forecast.text
    return forecast.json()["projected_invoice"] if forecast.status_code == 200 else None


def _focused(page) -> dict:
    """The element with the keyboard focus: its tag, accessible text and whether it shows focus."""
    return page.evaluate(
        """() => {
        const el = document.activeElement;
        const style = getComputedStyle(el);
        return {tag: el.tagName, text: (el.innerText || el.getAttribute("aria-label") || "").trim(),
                visible: el.matches(":focus-visible") && style.outlineStyle !== "none"
                         && parseFloat(style.outlineWidth) >= 2};
    }"""
    )


def _tab_to(page, text: str, limit: int = 120) -> dict:
    """Press Tab until the focus is on the control whose text is `text`; fail after `limit`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if " ".join(focused["text"].split()) == text:
            return focused
    raise AssertionError(f"Tab never reached {text!r}")


def test_a_keyboard_alone_reaches_and_works_the_portal(browser, stack, settings, api, tokens, shots):
    invoice = finalized_lite_invoice(api, tokens, "portal-keys")
    tenant_id, number = invoice["tenant_id"], invoice["number"]
    card = {"provider": "stripe", "payment_method_id": "pm_card_visa"}
    attached = api.post(
        f"/api/v1/tenants/{tenant_id}/payment-methods", json=card, headers=auth(tokens["billing-admin"])
    )
    assert attached.status_code == 204, attached.text
    offline = Offline(browser)
    page = offline.sign_in(stack, settings, "tenant", tenant_id)

    # Every control a keyboard reaches has a name a screen reader says.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll("a[href], button, select, input:not([type=hidden]), [tabindex]")]
            .filter(el => !(el.innerText || "").trim() && !el.getAttribute("aria-label")
                          && !(el.labels && el.labels.length) && !el.getAttribute("title"))
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    page.keyboard.press("Tab")
    first = _focused(page)
    assert first["text"] == "Skip to content" and first["visible"], first

    focused = _tab_to(page, f"PDF {number}")
    assert focused["visible"], focused
    page.screenshot(path=shots / "9-portal-keyboard-focus.png", full_page=False)
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert Path(download.value.path()).read_bytes().startswith(b"%PDF")

    focused = _tab_to(page, f"Pay by card {number}")
    assert focused["visible"] and focused["tag"] == "BUTTON", focused
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal?notice=paid*")
    row = page.locator(f'tr[data-invoice="{invoice["invoice_id"]}"]')
    assert row.locator("[data-status]").get_attribute("data-status") == "paid"
    assert offline.blocked == [] and offline.policy_errors == [], (offline.blocked, offline.policy_errors)
    offline.context.close()
