"""Invoice-run benchmark: prints figures, asserts nothing.

For each tenant count: invoices/s without PDFs (rating, FX, credits, tax, rows, numbering) as one
sequential process and as Ray tasks on the local cluster's CPUs, then Factur-X PDFs (PDF/A-3 with
the EN 16931 CII embedded) per second the same two ways, and where one PDF's time goes.

    .venv/bin/python bench/invoice_run.py [--tenants 1000 10000] [--pdfs 100] [--days 30]
    .venv/bin/python bench/invoice_run.py --pdfs-only [--pdfs 100]   # no stack: PDFs alone
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import ray
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.cpu import CpuMeter, ms_each
from bench.servers import bench_settings
from infra.database import create_engine
from infra.schema import tenants, usage_hourly
from infra.settings import Settings
from invoicing.config import InvoicingConfig
from invoicing.run import run_batch, run_period
from pricing.periods import Period

RUN = datetime.now(UTC).strftime("%H%M%S")
BATCH = 100  # tenants per Ray task, and per transaction in the sequential run
SEQUENTIAL_CPU_MS: list[float] = []  # CPU per invoice of each sequential run: steadier than its wall time


async def seed(settings: Settings, prefix: str, count: int, period: Period) -> None:
    """Tenants (shared tier, USD and EUR) with usage in every hour of `period`, written directly."""
    engine = create_engine(settings.database_url)
    hours = [period.start + timedelta(hours=h) for h in range((period.end - period.start) // timedelta(hours=1))]
    async with engine.begin() as conn:
        ids = [f"{prefix}-{n:05d}" for n in range(count)]
        await conn.execute(
            tenants.insert(),
            [
                {
                    "tenant_id": t,
                    "name": t,
                    "tier": "shared",
                    "currency": "eur" if n % 2 else "usd",
                    "country": "DE" if n % 2 else "US",
                    "region": None if n % 2 else "TX",
                }
                for n, t in enumerate(ids)
            ],
        )
        for start in range(0, count, 200):
            await conn.execute(
                usage_hourly.insert(),
                [
                    {
                        "tenant_id": t,
                        "hour_start": h,
                        "cpu_seconds": Decimal("3600.5"),
                        "memory_gb_hours": Decimal("2.25"),
                        "storage_gb_hours": 0,
                        "network_gb": 0,
                        "executions": 0,
                    }
                    for t in ids[start : start + 200]
                    for h in hours
                ],
            )
        # The planner's statistics as autovacuum keeps them: right after a bulk load of 240,000
        # rows they still describe small tables, and a run planned on them is 3x slower.
        await conn.execute(text("ANALYZE tenants, usage_hourly, invoices"))
    await engine.dispose()


async def load_rates(settings: Settings, days: list) -> None:
    from infra import fx_store
    from pricing.fx import RateTable

    text = "Date,USD,\n" + "".join(f"{d},1.0800,\n" for d in days)
    engine = create_engine(settings.database_url)
    async with engine.begin() as conn:
        await fx_store.import_table(conn, RateTable.from_ecb_csv(text, settings.fx_source), actor="bench")
    await engine.dispose()


def sequential(settings: Settings, prefix: str, count: int, period: Period) -> float:
    ids = [f"{prefix}-{n:05d}" for n in range(count)]
    config = InvoicingConfig.of(settings)
    started, cpu = time.perf_counter(), time.process_time()
    results = [
        result
        for start in range(0, count, BATCH)
        for result in run_batch(config, ids[start : start + BATCH], period, True, False)
    ]
    assert all(r["outcome"] == "created" for r in results), [r for r in results if r["outcome"] != "created"][
        :3
    ]
    SEQUENTIAL_CPU_MS.append(1000 * (time.process_time() - cpu) / count)
    return count / (time.perf_counter() - started)


RAY_CPU: list[list[str]] = []  # each Ray run's CPU per invoice by process group


def on_ray(settings: Settings, prefix: str, count: int, period: Period) -> float:
    ids = [f"{prefix}-{n:05d}" for n in range(count)]
    meter = CpuMeter(settings.data_dir, settings.redis_url)
    cpu_before, started = meter.snapshot(), time.perf_counter()
    summary = run_period(settings, period, batch_size=BATCH, pdfs=False, tenant_ids=ids)
    rate = summary.outcomes["created"] / (time.perf_counter() - started)
    assert summary.outcomes["created"] >= count, summary.outcomes
    RAY_CPU.append(ms_each(cpu_before, meter.snapshot(), count, "invoice"))
    return rate


BUYER = {
    "tenant_id": "bench",
    "name": "Bench GmbH",
    "country": "DE",
    "vat_id": None,
    "locale": "de_DE",
    "address": {"line1": "Hauptstraße 5", "postal_code": "80331", "city": "München", "country": "DE"},
}


def factur_x(document: dict, buyer: dict = BUYER) -> bytes:
    """One finalized invoice as the tenant downloads it: a Factur-X PDF/A-3 with its CII."""
    from invoicing.document import build_invoice
    from invoicing.pdf import render_pdf
    from invoicing.seller import load_seller
    from payments.wire import wire_reference

    doc = build_invoice(document, buyer, load_seller(), reference=wire_reference(str(document["number"])))
    return render_pdf(doc, str(buyer["locale"]))


@ray.remote
def render_many(documents: list[dict]) -> int:
    for document in documents:
        factur_x(document)
    return len(documents)


async def documents(settings: Settings, count: int) -> list[dict]:
    from sqlalchemy import select

    from infra.schema import invoices
    from invoicing.records import Invoice
    from invoicing.service import invoice_document

    engine = create_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(invoices).where(invoices.c.status == "finalized").limit(count))
        ).all()
    await engine.dispose()
    return [invoice_document(Invoice.of(row)) for row in rows]


def composed_documents(count: int) -> list[dict]:
    """`count` finalized one-page invoices composed in process (no stack): the demo's kinds."""
    from tests.invoicing.cases import CASES, stored_invoice

    kinds = [stored_invoice(case)[0] for case in CASES if case.currency == "eur"]
    return [kinds[n % len(kinds)] for n in range(count)]


def pdf_stages(docs: list[dict]) -> str:
    """Where a Factur-X PDF's CPU time goes, step by step as `render_pdf` takes them: the
    document and template (Jinja2, gettext, Babel, the GiroCode), the CII XML, parsing the HTML,
    WeasyPrint's layout (styles, boxes, lines), writing the PDF/A-3b (drawing, font subsetting,
    the CII attached with Factur-X's XMP, serialization), and the garbage collection after."""
    import gc

    from invoicing.document import build_invoice
    from invoicing.einvoice import cii_xml
    from invoicing.i18n import Localizer
    from invoicing.pdf import _stylesheet, facturx_pdf, parsed_html, render_html
    from invoicing.seller import load_seller

    stages = ("template", "xml", "parse", "layout", "write", "collect")
    spent = dict.fromkeys(stages, 0.0)
    stylesheet, fonts = _stylesheet()
    for document in docs:
        gc.disable()  # as render_pdf does (invoicing.collector.collected_after)
        times = [time.process_time()]
        doc = build_invoice(document, BUYER, load_seller(), reference="RF18BENCH")
        words = Localizer(str(BUYER["locale"]))
        html = render_html(doc, words)
        times.append(time.process_time())
        xml = cii_xml(doc, words)
        times.append(time.process_time())
        parsed = parsed_html(html)
        times.append(time.process_time())
        rendered = parsed.render(stylesheets=[stylesheet], font_config=fonts)
        times.append(time.process_time())
        facturx_pdf(rendered, xml, doc, words)
        times.append(time.process_time())
        del parsed, rendered  # garbage now, as when render_pdf's _render has returned
        gc.enable()
        gc.collect(0)
        times.append(time.process_time())
        for stage, (before, after) in zip(stages, pairwise(times), strict=True):
            spent[stage] += after - before
    return ", ".join(f"{stage} {1000 * seconds / len(docs):.1f} ms" for stage, seconds in spent.items())


def time_pdfs(docs: list[dict]) -> tuple[float, float]:
    """(wall, CPU) seconds per Factur-X PDF in this process, after one to warm the fonts. The CPU
    time is what a PDF costs on a machine that others also load; the wall time is what it takes."""
    factur_x(docs[0])
    started, cpu = time.perf_counter(), time.process_time()
    for document in docs:
        factur_x(document)
    return (time.perf_counter() - started) / len(docs), (time.process_time() - cpu) / len(docs)


def pdfs(settings: Settings, count: int) -> None:
    docs = asyncio.run(documents(settings, count))
    wall, cpu_seconds = time_pdfs(docs)
    one = 1 / wall
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.get([render_many.remote(docs[:2]) for _ in range(cpus)])  # warm the workers
    started = time.perf_counter()
    ray.get([render_many.remote(docs[i::cpus]) for i in range(cpus)])
    parallel = len(docs) / (time.perf_counter() - started)
    print(
        f"Factur-X PDFs ({len(docs)} one-page invoices): one process {one:.1f}/s ({1000 / one:.0f} ms each), "
        f"(CPU {1000 * cpu_seconds:.0f} ms), Ray on {cpus} CPUs {parallel:.1f}/s, ratio {parallel / one:.2f}"
    )
    print(f"  per PDF: {pdf_stages(docs[:20])}")


def pdfs_only(count: int) -> None:
    """The PDF figures alone, without the stack: composed documents, one process."""
    print(machine.describe("before"))
    docs = composed_documents(count)
    wall, cpu_seconds = time_pdfs(docs)
    print(
        f"Factur-X PDFs ({len(docs)} one-page invoices, one process): {1000 * wall:.0f} ms each "
        f"(CPU {1000 * cpu_seconds:.0f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"  per PDF: {pdf_stages(docs[:20])}")


def _counted() -> str:
    """What the figures leave out: a system PostgreSQL's processes are not ours to find."""
    return " (PostgreSQL from DATABASE_URL: not counted)" if os.environ.get("DATABASE_URL") else ""


def warm_up(settings: Settings, midnight: datetime) -> None:
    """A first run of 400 tenants, printed apart: it starts the Ray workers and imports the code in
    them (a second or two per worker), which a cluster running invoice runs has done already."""
    count, day = 4 * BATCH, Period(midnight - timedelta(days=3), midnight - timedelta(days=2))
    asyncio.run(seed(settings, f"warm{RUN}", count, day))
    asyncio.run(seed(settings, f"wray{RUN}", count, day))
    rate_one = sequential(settings, f"warm{RUN}", count, day)
    rate_ray = on_ray(settings, f"wray{RUN}", count, day)
    print(f"first run ({count} tenants, cold workers): one process {rate_one:,.0f}/s, Ray {rate_ray:,.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1000])
    parser.add_argument("--pdfs", type=int, default=100)
    parser.add_argument("--days", type=int, default=1, help="each run's period (30: a month of hourly usage)")
    parser.add_argument("--pdfs-only", action="store_true", help="only the PDF figures, without the stack")
    args = parser.parse_args()
    if args.pdfs_only:
        pdfs_only(args.pdfs)
        return
    os.environ.setdefault("BILLING_FX_SOURCE", "bench rates")
    os.environ.setdefault("BILLING_AUTO_INVOICE", "0")  # no scheduled month competing for the CPUs
    from serve.stack import start_stack

    with bench_settings() as requested:
        stack = start_stack(requested, dashboard=False)
        try:
            measure(stack.settings, args)
        finally:
            stack.stop()


def measure(settings: Settings, args: argparse.Namespace) -> None:
    """Invoice runs at each tenant count, then PDFs; prints the figures."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = 2 * args.days + 10
    asyncio.run(load_rates(settings, [(midnight - timedelta(days=d)).date() for d in range(days)]))
    print(f"{os.cpu_count()} CPUs; Ray sees {ray.cluster_resources().get('CPU')}")
    print(machine.describe("before"))
    warm_up(settings, midnight)
    for count in args.tenants:
        # Two disjoint sets of tenants, each with its own period, so neither run finds the other's invoices.
        span = timedelta(days=args.days)
        one_period, ray_period = Period(midnight - 2 * span, midnight - span), Period(midnight - span, midnight)
        asyncio.run(seed(settings, f"seq{RUN}-{count}", count, one_period))
        asyncio.run(seed(settings, f"ray{RUN}-{count}", count, ray_period))
        rate_one = sequential(settings, f"seq{RUN}-{count}", count, one_period)
        rate_ray = on_ray(settings, f"ray{RUN}-{count}", count, ray_period)
        print(
            f"{count:,} tenants ({24 * args.days} hours of usage each), invoices without PDFs: one process {rate_one:,.0f}/s "
            f"(CPU {SEQUENTIAL_CPU_MS[-1]:.2f} ms each), Ray {rate_ray:,.0f}/s, ratio {rate_ray / rate_one:.2f}"
        )
        print("  CPU of the Ray run by process group" + _counted() + ":", *RAY_CPU[-1], sep="\n")
    if args.pdfs:
        pdfs(settings, args.pdfs)
    print(machine.describe("after"))


if __name__ == "__main__":
    main()
