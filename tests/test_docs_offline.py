"""/docs and /redoc work with no network but the service's own: their assets come from an installed
package, not a CDN (issue 13). Opened in headless Chromium with every other host blocked."""

from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest

from tests.chromium import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Chromium is not installed (Debian's chromium; .ci/run installs it)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def open_offline(browser, url: str):
    """A page at `url` whose requests to any host but 127.0.0.1 are aborted (and recorded), and
    the requests that failed otherwise."""
    page = browser.new_page()
    blocked: list[str] = []

    def only_local(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    failed: list[str] = []
    # A request the page's content policy refused never left the browser (ReDoc's CDN logo).
    page.on(
        "requestfailed",
        lambda request: "csp" in (request.failure or "").lower() or failed.append(request.url),
    )
    page.goto(url, wait_until="load")
    return page, blocked, failed


def test_swagger_ui_lists_the_operations_offline(browser, stack):
    page, blocked, failed = open_offline(browser, f"{stack.api_url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/usage" in path for path in paths), paths
    assert any("/api/v1/invoices" in path for path in paths), paths
    assert blocked == [] and failed == [], (blocked, failed)
    page.close()


def test_redoc_lists_the_operations_offline(browser, stack):
    page, blocked, failed = open_offline(browser, f"{stack.api_url}/redoc")
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    operations = [
        page.locator("[data-section-id^='operation/']").nth(n).get_attribute("data-section-id")
        for n in range(page.locator("[data-section-id^='operation/']").count())
    ]
    assert len(operations) > 20 and any("usage" in op.lower() for op in operations), operations
    assert blocked == [] and failed == [], (blocked, failed)
    page.close()
