"""How fast the tenant portal and the finance console become interactive on the demo's data
(issue 19 asks for 1 s), measured in Debian's headless Chromium with every host but 127.0.0.1
blocked, as a user would open them.

    make demo && .venv/bin/python bench/pages.py [--loads 20] [--tenant acme-zero ...]

It starts `billing up` on the demo's data dir (BILLING_DATA_DIR, default .billing) on free ports,
signs in with `billing login-link`'s links, loads each page `--loads` times after one warm-up
load (the first load of a fresh process also compiles templates and catalogs), and prints, per
page, the time until the document is interactive (the navigation's `domInteractive`: the server
rendered it and the browser parsed it) and until the page's own script has drawn it (the usage
chart's canvas, or the console's runs table filled), median / p90 / max. Then it stops the service.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.demo import TENANTS  # the demo's tenants: the data measured on
from cli.login_link import signed_link
from infra.settings import Settings
from tests.chromium import ARGS, CHROMIUM
from tests.ports import free_ports

DRAWN = {"portal": "#usage-chart canvas", "console": "#runs-table tbody tr"}


def start_service(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, stats_port, metrics_port = free_ports(3)
    env = os.environ | {
        "BILLING_HTTP_PORT": str(port),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--no-dashboard"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while "Serving;" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"billing up did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return process, f"http://127.0.0.1:{port}"


def only_local(route) -> None:  # type: ignore[no-untyped-def]
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def measure(browser, url: str, page_name: str, loads: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """(domInteractive, drawn) in ms for each of `loads` loads of the page `url` signs in to."""
    context = browser.new_context()
    context.route("**/*", only_local)
    page = context.new_page()
    page.goto(url)
    page.locator(DRAWN[page_name]).first.wait_for(timeout=30_000)  # the warm-up load
    interactive, drawn = [], []
    for _ in range(loads):
        started = time.perf_counter()
        page.reload(wait_until="domcontentloaded")
        page.locator(DRAWN[page_name]).first.wait_for(timeout=30_000)
        drawn.append(1000 * (time.perf_counter() - started))
        interactive.append(page.evaluate("performance.getEntriesByType('navigation')[0].domInteractive"))
    context.close()
    return interactive, drawn


def figures(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.0f} / {p90:.0f} / {ordered[-1]:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--tenant", action="append", help="a demo tenant (default: each of the demo's)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    settings = Settings.from_env()
    log = settings.data_dir / "bench-pages-up.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    process, base_url = start_service(log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            who = [("tenant", tenant) for tenant in args.tenant or [t[0] for t in TENANTS]]
            print(f"pages on {settings.data_dir} ({args.loads} loads each, after one warm-up; median / p90 / max)")
            print(f"{'page':<34} {'interactive (domInteractive)':>30} {'drawn by its script':>24}")
            for role, tenant in [*who, ("finance", None)]:
                page_name = "portal" if tenant else "console"
                url = signed_link(settings, base_url, role, tenant)
                interactive, drawn = measure(browser, url, page_name, args.loads)
                label = f"/portal ({tenant})" if tenant else "/console (finance)"
                print(f"{label:<34} {figures(interactive):>30} {figures(drawn):>24}")
            browser.close()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; the service's log: {log}")


if __name__ == "__main__":
    main()
