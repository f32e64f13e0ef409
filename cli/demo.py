"""`billing demo`: the main job, end to end on the embedded defaults (design.md §5).

Start the stack, register tenants on all five tiers in several countries and currencies, stream
a day of synthetic usage through the HTTP API in batches, measure events/s and freshness, print
per-tenant usage and month-to-date quotes, then invoice the last day on Ray tasks (PDFs written
under the data dir), then pay each invoice by Stripe, PayPal or wire transfer against local
provider endpoints (cli/demo_payments.py), print the signed webhooks one tenant's endpoint (a
receiver in this process) got and verified, its spend alert among them (cli/demo_webhooks.py),
and finally train the usage-forecast and churn models on a generated history (forecasting/),
printing MASE, AUC against the oracle and the plot paths.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from cli.demo_webhooks import DemoReceiver
    from infra.settings import Settings
    from payments.sandbox import Sandbox
    from pricing.fx import RateTable
    from pricing.periods import Period
    from serve.stack import Stack

# The rate source an invoice names: an identifier, not words (it stands inside the invoice's own
# language), and plainly not the ECB's.
DEMO_RATES = "ENIS-DEMO"
TENANTS = [
    ("acme-zero", "Acme Functions", "zero", "usd", "US", "CA", None, "en"),
    ("globex-shared", "Globex GmbH", "shared", "eur", "DE", None, "DE811907980", "de"),
    ("initech-lite", "Initech SL", "lite", "eur", "ES", None, None, "es"),
    ("umbrella-ent", "Umbrella KK", "enterprise", "jpy", "JP", None, None, "en"),
    ("stark-airgap", "Stark Industries", "airgapped", "usd", "US", "NY", None, "en"),
    ("wayne-shared", "Wayne Enterprises", "shared", "gbp", "GB", None, None, "en"),
    ("lumiere-shared", "Lumière SAS", "shared", "eur", "FR", None, "FR40303265045", "fr"),
]
# What an invoice must name of its buyer (EU VAT Directive art. 226): each tenant's address, and
# where the invoice goes. Globex pays in 30 days, Lumière in 45; the others the seller's default.
ADDRESSES = {
    "acme-zero": {
        "line1": "500 Howard Street",
        "postal_code": "94105",
        "city": "San Francisco",
        "region": "CA",
        "country": "US",
    },
    "globex-shared": {
        "line1": "Friedrichstraße 68",
        "postal_code": "10117",
        "city": "Berlin",
        "country": "DE",
    },
    "initech-lite": {
        "line1": "Calle de Alcalá 45",
        "postal_code": "28014",
        "city": "Madrid",
        "country": "ES",
    },
    "umbrella-ent": {
        "line1": "1-9-1 Marunouchi",
        "line2": "Chiyoda-ku",
        "postal_code": "100-0005",
        "city": "Tokyo",
        "country": "JP",
    },
    "stark-airgap": {
        "line1": "200 Park Avenue",
        "postal_code": "10166",
        "city": "New York",
        "region": "NY",
        "country": "US",
    },
    "wayne-shared": {"line1": "1 Canada Square", "postal_code": "E14 5AB", "city": "London", "country": "GB"},
    "lumiere-shared": {
        "line1": "29 Boulevard Haussmann",
        "postal_code": "75009",
        "city": "Paris",
        "country": "FR",
    },
}
PAYMENT_TERMS_DAYS = {"globex-shared": 30, "lumiere-shared": 45}
# Per-event usage scale by tier: (cpu_seconds, memory_gb_hours, network_gb, executions)
SCALE: dict[str, tuple[int | str, int | str, str, int]] = {
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


def synthetic_batch(
    rng: random.Random, size: int, now: datetime, run: str, start: int
) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
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


RETRIES = 10  # a batch answered 503 is sent again after its Retry-After, as the kernel does


async def stream(url: str, token: str, args: argparse.Namespace) -> tuple[int, float, int]:
    """Post the synthetic batches; (events accepted, seconds, batches sent again after a 503).
    A 503 carries Retry-After and may have accepted part of the batch: the same batch again is
    answered with those events as duplicates (the event ids dedup), so nothing counts twice."""
    import httpx
    import orjson

    rng, run, now = random.Random(7), datetime.now(UTC).strftime("%Y%m%d%H%M%S"), datetime.now(UTC)
    batches = iter(range(0, args.events, args.batch))
    accepted = retried = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted, retried
        for start in batches:
            body = orjson.dumps(
                {"events": synthetic_batch(rng, min(args.batch, args.events - start), now, run, start)}
            )
            for attempt in range(RETRIES + 1):
                response = await client.post("/api/v1/usage", content=body)
                if response.status_code != 503 or attempt == RETRIES:
                    break
                retried += 1
                await asyncio.sleep(min(5.0, float(response.headers.get("retry-after") or 1)))
            response.raise_for_status()
            result = response.json()
            accepted += result["accepted"] + result["duplicates"]

    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        return accepted, time.perf_counter() - started, retried


async def freshness(url: str, kernel: str, viewer: str, probes: int = 20) -> list[float]:
    import httpx

    samples: list[float] = []
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


async def _executions(client: httpx.AsyncClient, viewer: str) -> Decimal:
    response = await client.get("/api/v1/usage/acme-zero", headers={"authorization": f"Bearer {viewer}"})
    return _total(response.json()["rows"], "executions")


def _total(rows: list[dict[str, Any]], meter: str) -> Decimal:
    return sum((Decimal(row[meter]) for row in rows), Decimal(0))


def _usage_rows(client: httpx.Client, viewer: str, tenant_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/usage/{tenant_id}", headers={"authorization": f"Bearer {viewer}"})
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


def _quote(client: httpx.Client, viewer: str, tenant_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/tenants/{tenant_id}/quote", headers={"authorization": f"Bearer {viewer}"})
    quote: dict[str, Any] = response.json()
    return quote


def _in_invoice_currency(amount: str, currency: str, invoice_currency: str, rates: RateTable) -> str:
    """A quote's amount (the price's currency) in the tenant's invoice currency, by the demo's
    rates of today, rounded as an invoice line is."""
    from pricing.fx import convert
    from pricing.money import Currency, Money

    source, target = Currency.of(currency), Currency.of(invoice_currency)
    converted = convert(
        Money.from_major(Decimal(amount), source), rates.rate(source, target, datetime.now(UTC).date())
    )
    return f"{Decimal(converted.rounded().format_major()):,} {target.code.upper()}"


def _licence_airgapped(client: httpx.Client, admin: str) -> None:
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


def _load_demo_rates(settings: Settings) -> RateTable:
    """Made-up EUR reference rates for the last two weeks, stored under their own source name so
    no invoice prints them as the ECB's."""
    from infra import fx_store
    from infra.database import create_engine
    from pricing.fx import RateTable

    today = datetime.now(UTC).date()
    lines = ["Date,USD,JPY,GBP,"] + [f"{today - timedelta(days=n)},1.0800,161.20,0.85200," for n in range(14)]
    table = RateTable.from_ecb_csv("\n".join(lines), DEMO_RATES)

    async def store() -> None:
        engine = create_engine(settings.resolved_database_url())
        async with engine.begin() as conn:
            await fx_store.import_table(conn, table, actor="demo")
        await engine.dispose()

    asyncio.run(store())
    return table


def _invoice_run(stack: Stack) -> Period:
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
        print(f"  invoiced {total:,} {currency.upper()}")
    for failure in summary.failures:
        print(f"  failed {failure['tenant_id']}: {failure['error']}")
    if summary.outcomes.get("existing"):
        print(
            "  (this period was invoiced by an earlier run: the same invoices, no new numbers; usage "
            "that reached it since is billed on a later invoice as late usage)"
        )
    print(f"  PDFs in {stack.settings.data_dir / 'invoices'}")
    return period


def _print_metrics() -> None:
    """What an operator's Prometheus would scrape after this traffic: each custom metric's total."""
    import httpx

    from infra import metrics

    url = metrics.endpoint()
    deadline = time.monotonic() + 30  # Ray pushes metrics to the node's agent every few seconds
    while True:
        text = httpx.get(url, timeout=10).text
        seen = metrics.totals(text)
        if "billing_payment_outcomes" in seen or time.monotonic() > deadline:
            break
        time.sleep(2)
    timed = metrics.histograms(text)
    print(f"\nCustom metrics at {url} (summed over their labels):")
    absent = {"gauge": "no current value", "counter": "none: nothing of the kind happened"}
    for metric in metrics.exported():
        if metric.name in timed and timed[metric.name][0]:
            count, total = timed[metric.name]
            shown = f"{count:,.0f} observed, {total:,.3f} s in all, mean {total / count * 1000:,.1f} ms"
        elif metric.name in seen:
            shown = f"{seen[metric.name]:,.0f}" if metric.kind == "counter" else f"{seen[metric.name]:,.2f}"
        else:
            shown = absent.get(metric.kind, absent["counter"])
        print(f"  {metric.name:<42} {shown}")


def run(args: argparse.Namespace) -> int:

    from cli.demo_payments import local_providers
    from cli.demo_webhooks import receiver

    with local_providers() as (providers, servers), receiver() as hooks:
        return _run(args, providers, servers, hooks)


def _run(
    args: argparse.Namespace, providers: dict[str, str], servers: Sandbox | None, hooks: DemoReceiver
) -> int:
    import httpx
    import ray

    from cli import demo_webhooks
    from cli.demo_payments import pay_invoices, save_cards
    from forecasting import demo_summary
    from infra.embedded import stop_embedded
    from infra.settings import Settings
    from serve.auth import mint
    from serve.stack import start_stack

    print("Starting PostgreSQL, Redis, Ray, the shard actors and the API ...", flush=True)
    # Serve's start-up lines (and its "existing app, options not applied" as the API deploys onto
    # the instance the stack started) say nothing the next lines do not; its warnings stay.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    os.environ.setdefault("BILLING_FX_SOURCE", DEMO_RATES)
    requested = Settings.from_env().with_(**providers, **demo_webhooks.SETTINGS)
    try:
        stack = start_stack(requested, dashboard=False)
    except BaseException:
        if requested.database_url is None or requested.redis_url is None:
            stop_embedded(requested.data_dir)  # started before the failure: leave nothing running
        raise
    secret = stack.settings.jwt_secret
    if secret is None:  # resolved settings have one (a dev key under the data dir when unset)
        raise RuntimeError("the stack's settings have no JWT secret to sign the demo's tokens with")
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
                    "address": ADDRESSES[tenant_id],
                    "email": f"billing@{tenant_id}.example",
                } | (
                    {"payment_terms_days": PAYMENT_TERMS_DAYS[tenant_id]}
                    if tenant_id in PAYMENT_TERMS_DAYS
                    else {}
                )
                client.post(
                    "/api/v1/tenants", json=body, headers={"authorization": f"Bearer {admin}"}
                ).raise_for_status()
            _licence_airgapped(client, admin)
            rates = _load_demo_rates(stack.settings)
            print(f"Registered {len(TENANTS)} tenants on all five tiers (demo FX rates loaded).")
            tenant_token = mint(secret, "tenant", tenant_id=demo_webhooks.TENANT)
            subscription = demo_webhooks.subscribe(client, tenant_token, hooks)
            _warn_old_history(stack.settings)
            accepted, seconds, retried = asyncio.run(stream(stack.api_url, kernel, args))
            print(
                f"Streamed {accepted:,} events in {seconds:.1f} s: {accepted / seconds:,.0f} events/s accepted "
                f"(batches of {args.batch}, {args.concurrency} concurrent posts"
                + (f"; {retried} posts answered 503 and sent again after Retry-After" if retried else "")
                + ")"
            )
            fresh = asyncio.run(freshness(stack.api_url, kernel, viewer))
            print(
                f"Freshness, one event at a time with ingest otherwise idle (202 -> visible in GET): "
                f"p50 {statistics.median(fresh) * 1000:.0f} ms, max {max(fresh) * 1000:.0f} ms "
                f"over {len(fresh)} probes"
            )
            stack.flush()
            print(
                f"\n{'tenant':<16}{'tier':<12}{'CPU-hours':>12}{'mem GB-h':>12}{'net GB':>10}{'executions':>12}"
                f"{'month to date':>18}  (before tax, in the invoice currency)"
            )
            quotes: dict[str, dict[str, Any]] = {}
            for tenant_id, _, tier, currency, *_ in TENANTS:
                rows = _usage_rows(client, viewer, tenant_id)
                cpu, memory, network, executions = (
                    _total(rows, m) for m in ("cpu_seconds", "memory_gb_hours", "network_gb", "executions")
                )
                quotes[tenant_id] = quote = _quote(client, viewer, tenant_id)
                due = _in_invoice_currency(quote["amount_due"], quote["currency"], currency, rates)
                print(
                    f"{tenant_id:<16}{tier:<12}{cpu / 3600:>12.2f}{memory:>12.2f}"
                    f"{network:>10.2f}{executions:>12,.0f}{due:>18}"
                )
            save_cards(client, admin, servers)
            period = _invoice_run(stack)
            _explain_airgapped(quotes, period)
            pay_invoices(client, stack.api_url, admin, servers, stack.settings.data_dir / "invoices")
            demo_webhooks.report(client, subscription, hooks)
            # The generated history lives in a database of its own: its tenants are never invoiced.
            print("\nTraining the usage-forecast and churn models on Ray tasks ...", flush=True)
            print(demo_summary(_history_settings(stack.settings)))
            _print_metrics()
        data_dir = stack.settings.data_dir
        print(
            f"\nData dir: {data_dir}  (PostgreSQL, Redis AOF, dev JWT key, invoices/, reports/)\n"
            "Run the demo again to add another day of usage for the same tenants; to start from "
            f"scratch, delete the data dir: rm -rf {data_dir}"
        )
    finally:
        began = time.monotonic()
        stack.stop()
        ray.shutdown()
        if requested.database_url is None or requested.redis_url is None:
            # The demo started them; it leaves nothing running behind it (the data stays).
            stop_embedded(stack.settings.data_dir)
        print(f"Stopped the stack in {time.monotonic() - began:.1f} s.")
    return 0


def _explain_airgapped(quotes: dict[str, dict[str, Any]], period: Period) -> None:
    """An airgapped tenant's month to date is its licence and support, dated at the licence's
    start; the demo invoices only the last 24 hours, which owe nothing of them: say so."""
    for tenant_id, quote in quotes.items():
        upfront = [line for line in quote["lines"] if line["kind"] in ("licence", "support")]
        if upfront and quote["tier"] == "airgapped":
            kinds = " and ".join(
                f"{line['kind']} {Decimal(line['amount']):,} {line['currency'].upper()}" for line in upfront
            )
            starts = min(line["period"]["start"] for line in upfront)[:10]
            print(
                f"  {tenant_id}: its month to date is the perpetual {kinds}, billed in advance from "
                f"{starts}; the invoice run above covers only the last 24 hours ({period.start:%Y-%m-%d %H:%M} "
                f"to {period.end:%Y-%m-%d %H:%M}), which owe none of it, hence its 0.00 invoice "
                "(the month's invoice, `billing invoice-run`, bills them)"
            )


def _history_settings(settings: Settings) -> Settings:
    """The forecasting history (300 generated tenants with two years of usage, invoices and
    payments) in a database of its own on the same server, `<database>_history`, migrated: kept
    apart from billing, so no invoice run bills its tenants and no invoice number is spent on them."""
    from sqlalchemy.engine import make_url

    from infra.database import migrate

    url = make_url(settings.resolved_database_url())
    history_url = url.set(database=f"{url.database}_history").render_as_string(hide_password=False)
    asyncio.run(_ensure_database(settings.resolved_database_url(), f"{url.database}_history"))
    migrate(history_url)
    return settings.with_(database_url=history_url)


async def _ensure_database(url: str, name: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _warn_old_history(settings: Settings) -> None:
    """A data dir from before the history had its own database holds it among the billed tenants."""
    from sqlalchemy import func, select

    from forecasting.workflows import default_spec
    from infra.database import create_engine
    from infra.schema import tenants

    async def count() -> int:
        engine = create_engine(settings.resolved_database_url(), pool_size=1)
        try:
            async with engine.connect() as conn:
                query = select(func.count()).where(tenants.c.tenant_id.startswith(default_spec().prefix))
                return int((await conn.execute(query)).scalar() or 0)
        finally:
            await engine.dispose()

    if found := asyncio.run(count()):
        print(
            f"  Note: this data dir's billing database holds {found} generated tenants from an older demo, "
            f"which invoice runs bill too; start from scratch with: rm -rf {settings.data_dir}"
        )
