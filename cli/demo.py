"""`billing demo`: the main job, end to end on the embedded defaults (design.md §5).

Start the stack, register tenants on all five tiers in several countries and currencies, stream
a day of synthetic usage through the HTTP API in batches, measure events/s and freshness, print
per-tenant usage and month-to-date quotes, then invoice the last day on Ray tasks (PDFs written
under the data dir), then pay each invoice by Stripe, PayPal or wire transfer against local
provider endpoints (cli/demo_payments.py), and finally train the usage-forecast and churn models on
a generated history (forecasting/), printing MASE, AUC against the oracle and the plot paths.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

DEMO_RATES = "demo rates (not the ECB's)"
TENANTS = [
    ("acme-zero", "Acme Functions", "zero", "usd", "US", "CA", None, "en"),
    ("globex-shared", "Globex GmbH", "shared", "eur", "DE", None, "DE136695976", "de"),
    ("initech-lite", "Initech SL", "lite", "eur", "ES", None, None, "es"),
    ("umbrella-ent", "Umbrella KK", "enterprise", "jpy", "JP", None, None, "en"),
    ("stark-airgap", "Stark Industries", "airgapped", "usd", "US", "NY", None, "en"),
    ("wayne-shared", "Wayne Enterprises", "shared", "gbp", "GB", None, None, "en"),
]
# Per-event usage scale by tier: (cpu_seconds, memory_gb_hours, network_gb, executions)
SCALE = {
    "zero": (0, 0, "0.01", 3),
    "shared": (30, "0.2", "0.05", 0),
    "lite": (60, "0.5", "0.02", 0),
    "enterprise": (900, "6", "0.5", 10),
    "airgapped": (120, "1", "0", 0),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="synthetic usage events to stream")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)


def synthetic_batch(rng: random.Random, size: int, now: datetime, run: str, start: int) -> list[dict]:
    events = []
    for n in range(start, start + size):
        tenant_id, *_, tier = _pick(rng)
        cpu, memory, network, executions = SCALE[tier]
        wobble = Decimal(rng.randint(50, 150)) / 100
        events.append(
            {
                "event_id": f"demo-{run}-{n}",
                "tenant_id": tenant_id,
                "timestamp": (now - timedelta(seconds=rng.randint(0, 23 * 3600))).isoformat(),
                "usage": {
                    "cpu_seconds": str(Decimal(cpu) * wobble),
                    "memory_gb_hours": str(Decimal(memory) * wobble),
                    "network_gb": str(Decimal(network) * wobble),
                    "executions": executions * rng.randint(0, 2),
                },
            }
        )
    return events


def _pick(rng: random.Random) -> tuple[str, str]:
    tenant = rng.choice(TENANTS)
    return tenant[0], tenant[2]


async def stream(url: str, token: str, args: argparse.Namespace) -> tuple[int, float]:
    import httpx
    import orjson

    rng, run, now = random.Random(7), datetime.now(UTC).strftime("%Y%m%d%H%M%S"), datetime.now(UTC)
    batches = iter(range(0, args.events, args.batch))
    accepted = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        for start in batches:
            body = orjson.dumps(
                {"events": synthetic_batch(rng, min(args.batch, args.events - start), now, run, start)}
            )
            response = await client.post("/api/v1/usage", content=body)
            response.raise_for_status()
            accepted += response.json()["accepted"]

    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        return accepted, time.perf_counter() - started


async def freshness(url: str, kernel: str, viewer: str, probes: int = 20) -> list[float]:
    import httpx

    samples = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for n in range(probes):
            event = {
                "event_id": f"fresh-{time.time_ns()}",
                "tenant_id": "acme-zero",
                "timestamp": datetime.now(UTC).isoformat(),
                "usage": {"executions": 1},
            }
            before = await _executions(client, viewer)
            await client.post("/api/v1/usage", json=event, headers={"authorization": f"Bearer {kernel}"})
            posted = time.perf_counter()
            while await _executions(client, viewer) == before:
                await asyncio.sleep(0.002)
            samples.append(time.perf_counter() - posted)
    return samples


async def _executions(client, viewer: str) -> Decimal:
    response = await client.get("/api/v1/usage/acme-zero", headers={"authorization": f"Bearer {viewer}"})
    return _total(response.json()["rows"], "executions")


def _total(rows: list[dict], meter: str) -> Decimal:
    return sum((Decimal(row[meter]) for row in rows), Decimal(0))


def _usage_rows(client, viewer: str, tenant_id: str) -> list[dict]:
    return client.get(f"/api/v1/usage/{tenant_id}", headers={"authorization": f"Bearer {viewer}"}).json()[
        "rows"
    ]


def _month_to_date(client, viewer: str, tenant_id: str) -> str:
    quote = client.get(
        f"/api/v1/tenants/{tenant_id}/quote", headers={"authorization": f"Bearer {viewer}"}
    ).json()
    return f"{quote['amount_due']} {quote['currency'].upper()}"


def _licence_airgapped(client, admin: str) -> None:
    """The airgapped tenant's perpetual licence, from the start of this month."""
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for tenant_id, _, tier, *_ in TENANTS:
        if tier == "airgapped":
            settings = {
                "tenant_id": tenant_id,
                "tier": tier,
                "licence": {
                    "licence_id": f"{tenant_id}-licence",
                    "starts": month.isoformat().replace("+00:00", "Z"),
                },
            }
            client.put(
                f"/api/v1/tenants/{tenant_id}/pricing",
                json=settings,
                headers={"authorization": f"Bearer {admin}"},
            ).raise_for_status()


def _load_demo_rates(settings) -> None:
    """Made-up EUR reference rates for the last two weeks, stored under their own source name so
    no invoice prints them as the ECB's."""
    from infra import fx_store
    from infra.database import create_engine
    from pricing.fx import RateTable

    today = datetime.now(UTC).date()
    lines = ["Date,USD,JPY,GBP,"] + [f"{today - timedelta(days=n)},1.0800,161.20,0.85200," for n in range(14)]
    table = RateTable.from_ecb_csv("\n".join(lines), DEMO_RATES)

    async def store() -> None:
        engine = create_engine(settings.database_url)
        async with engine.begin() as conn:
            await fx_store.import_table(conn, table, actor="demo")
        await engine.dispose()

    asyncio.run(store())


def _invoice_run(stack) -> None:
    from invoicing.run import run_period
    from pricing.periods import Period

    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    period = Period(hour - timedelta(days=1), hour)
    started = time.perf_counter()
    summary = run_period(stack.settings, period, batch_size=2)
    seconds = time.perf_counter() - started
    print(
        f"\nInvoice run for {period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M} UTC on Ray tasks "
        f"({seconds:.1f} s): " + ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
    )
    for currency, total in sorted(summary.totals.items()):
        print(f"  invoiced {total} {currency.upper()}")
    for failure in summary.failures:
        print(f"  failed {failure['tenant_id']}: {failure['error']}")
    print(f"  PDFs in {stack.settings.data_dir / 'invoices'}")


def _print_metrics() -> None:
    """What an operator's Prometheus would scrape after this traffic: each custom metric's total."""
    import httpx

    from infra import metrics

    url = metrics.endpoint()
    deadline = time.monotonic() + 30  # Ray pushes metrics to the node's agent every few seconds
    while True:
        seen = metrics.totals(httpx.get(url, timeout=10).text)
        if "billing_payment_outcomes" in seen or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"\nCustom metrics at {url} (summed over their labels):")
    absent = {"gauge": "no current value", "counter": "none: nothing of the kind happened"}
    for metric in metrics.exported():
        shown = (
            f"{seen[metric.name]:,.2f}" if metric.name in seen else absent.get(metric.kind, absent["counter"])
        )
        print(f"  {metric.name:<42} {shown}")


def run(args: argparse.Namespace) -> int:

    from cli.demo_payments import local_providers

    with local_providers() as (providers, servers):
        return _run(args, providers, servers)


def _run(args: argparse.Namespace, providers: dict, servers) -> int:
    import httpx

    from cli.demo_payments import pay_invoices
    from forecasting import demo_summary
    from infra.embedded import stop_embedded
    from infra.settings import Settings
    from serve.auth import mint
    from serve.stack import start_stack

    print("Starting PostgreSQL, Redis, Ray, the shard actors and the API ...", flush=True)
    os.environ.setdefault("BILLING_FX_SOURCE", DEMO_RATES)
    requested = Settings.from_env().with_(**providers)
    stack = start_stack(requested, dashboard=False)
    secret = stack.settings.jwt_secret
    kernel, admin, viewer = (mint(secret, role) for role in ("kernel", "billing-admin", "viewer"))
    try:
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:
            for tenant_id, name, tier, currency, country, region, vat_id, locale in TENANTS:
                body = {
                    "tenant_id": tenant_id,
                    "name": name,
                    "tier": tier,
                    "currency": currency,
                    "country": country,
                    "region": region,
                    "vat_id": vat_id,
                    "locale": locale,
                }
                client.post(
                    "/api/v1/tenants", json=body, headers={"authorization": f"Bearer {admin}"}
                ).raise_for_status()
            _licence_airgapped(client, admin)
            _load_demo_rates(stack.settings)
            print(f"Registered {len(TENANTS)} tenants on all five tiers (demo FX rates loaded).")
            accepted, seconds = asyncio.run(stream(stack.api_url, kernel, args))
            print(
                f"Streamed {accepted:,} events in {seconds:.1f} s: {accepted / seconds:,.0f} events/s accepted "
                f"(batches of {args.batch}, {args.concurrency} concurrent posts)"
            )
            fresh = asyncio.run(freshness(stack.api_url, kernel, viewer))
            print(
                f"Freshness (202 -> visible in GET): p50 {statistics.median(fresh) * 1000:.0f} ms, "
                f"max {max(fresh) * 1000:.0f} ms over {len(fresh)} probes"
            )
            stack.flush()
            print(
                f"\n{'tenant':<16}{'tier':<12}{'CPU-hours':>12}{'mem GB-h':>12}{'net GB':>10}{'executions':>12}{'month to date':>16}"
            )
            for tenant_id, _, tier, *_ in TENANTS:
                rows = _usage_rows(client, viewer, tenant_id)
                cpu, memory, network, executions = (
                    _total(rows, m) for m in ("cpu_seconds", "memory_gb_hours", "network_gb", "executions")
                )
                print(
                    f"{tenant_id:<16}{tier:<12}{cpu / 3600:>12.2f}{memory:>12.2f}"
                    f"{network:>10.2f}{executions:>12,.0f}{_month_to_date(client, viewer, tenant_id):>16}"
                )
            _invoice_run(stack)
            pay_invoices(client, stack.api_url, admin, servers)
            # After the invoice run: the generated history's tenants are not the demo's customers.
            print("\nTraining the usage-forecast and churn models on Ray tasks ...", flush=True)
            print(demo_summary(stack.settings))
            _print_metrics()
        print(f"\nData dir: {stack.settings.data_dir}  (PostgreSQL, Redis AOF, dev JWT key)")
    finally:
        stack.stop()
        if requested.database_url is None or requested.redis_url is None:
            # The demo started them; it leaves nothing running behind it (the data stays).
            stop_embedded(stack.settings.data_dir)
    return 0
