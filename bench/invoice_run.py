"""Invoice-run benchmark: prints figures, asserts nothing.

For each tenant count: invoices/s without PDFs (rating, FX, credits, tax, rows, numbering) as one
sequential process and as Ray tasks on the local cluster's CPUs, then PDFs/s the same two ways.

    .venv/bin/python bench/invoice_run.py [--tenants 1000 10000] [--pdfs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.database import create_engine
from infra.schema import tenants, usage_hourly
from infra.settings import Settings
from invoicing.run import _invoice_batch, run_period
from pricing.periods import Period

RUN = datetime.now(UTC).strftime("%H%M%S")
BATCH = 100  # tenants per Ray task, and per transaction in the sequential run


async def seed(settings: Settings, prefix: str, count: int, period: Period) -> None:
    """Tenants (shared tier, USD and EUR) with 24 hours of usage each, written directly."""
    engine = create_engine(settings.database_url)
    hours = [period.start + timedelta(hours=h) for h in range(24)]
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
    started = time.perf_counter()
    results = [
        result
        for start in range(0, count, BATCH)
        for result in asyncio.run(_invoice_batch(settings, ids[start : start + BATCH], period, True, False))
    ]
    assert all(r["outcome"] == "created" for r in results), [r for r in results if r["outcome"] != "created"][
        :3
    ]
    return count / (time.perf_counter() - started)


def on_ray(settings: Settings, prefix: str, count: int, period: Period) -> float:
    ids = [f"{prefix}-{n:05d}" for n in range(count)]
    started = time.perf_counter()
    summary = run_period(settings, period, batch_size=BATCH, pdfs=False, tenant_ids=ids)
    assert summary.outcomes["created"] >= count, summary.outcomes
    return summary.outcomes["created"] / (time.perf_counter() - started)


@ray.remote
def render_many(documents: list[dict]) -> int:
    from invoicing.pdf import render_invoice_pdf

    buyer = {"name": "Bench GmbH", "country": "DE", "vat_id": None, "tenant_id": "bench"}
    for document in documents:
        render_invoice_pdf(document, buyer, {"name": "ENIS Cloud Platform", "country": "DE"}, "en")
    return len(documents)


async def documents(settings: Settings, count: int) -> list[dict]:
    from sqlalchemy import select

    from infra.schema import invoices
    from invoicing.service import invoice_document

    engine = create_engine(settings.database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(invoices).where(invoices.c.status == "finalized").limit(count))
        ).all()
    await engine.dispose()
    return [invoice_document(row) for row in rows]


def pdf_stages(docs: list[dict]) -> str:
    """Where a PDF's time goes: the template (Jinja2 + Babel), WeasyPrint's layout, and writing
    the PDF (font subsetting and serialization)."""
    from weasyprint import HTML

    from invoicing.pdf import TEMPLATES, render_invoice_html

    buyer = {"name": "Bench GmbH", "country": "DE", "vat_id": None, "tenant_id": "bench"}
    spent = {"template": 0.0, "layout": 0.0, "write": 0.0}
    for document in docs:
        started = time.perf_counter()
        html = render_invoice_html(document, buyer, {"name": "ENIS Cloud Platform", "country": "DE"}, "en")
        laid_out = time.perf_counter()
        rendered = HTML(string=html, base_url=str(TEMPLATES)).render()
        written = time.perf_counter()
        rendered.write_pdf()
        spent["template"] += laid_out - started
        spent["layout"] += written - laid_out
        spent["write"] += time.perf_counter() - written
    return ", ".join(f"{stage} {1000 * seconds / len(docs):.0f} ms" for stage, seconds in spent.items())


def pdfs(settings: Settings, count: int) -> None:
    from invoicing.pdf import render_invoice_pdf

    docs = asyncio.run(documents(settings, count))
    buyer = {"name": "Bench GmbH", "country": "DE", "vat_id": None, "tenant_id": "bench"}
    render_invoice_pdf(docs[0], buyer, {"name": "ENIS", "country": "DE"}, "en")  # warm the fonts
    started = time.perf_counter()
    for document in docs:
        render_invoice_pdf(document, buyer, {"name": "ENIS Cloud Platform", "country": "DE"}, "en")
    one = len(docs) / (time.perf_counter() - started)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    ray.get([render_many.remote(docs[:2]) for _ in range(cpus)])  # warm the workers
    started = time.perf_counter()
    ray.get([render_many.remote(docs[i::cpus]) for i in range(cpus)])
    parallel = len(docs) / (time.perf_counter() - started)
    print(
        f"PDFs ({len(docs)} one-page invoices): one process {one:.1f}/s ({1000 / one:.0f} ms each), "
        f"Ray on {cpus} CPUs {parallel:.1f}/s, ratio {parallel / one:.2f}"
    )
    print(f"  per PDF: {pdf_stages(docs[:20])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1000])
    parser.add_argument("--pdfs", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("BILLING_DATA_DIR", ".billing-bench")
    os.environ.setdefault("BILLING_FX_SOURCE", "bench rates")
    os.environ.setdefault("BILLING_AUTO_INVOICE", "0")  # no scheduled month competing for the CPUs
    from serve.stack import start_stack

    stack = start_stack(Settings.from_env(), dashboard=False)
    settings = stack.settings
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    asyncio.run(load_rates(settings, [(midnight - timedelta(days=d)).date() for d in range(40)]))
    print(f"{os.cpu_count()} CPUs; Ray sees {ray.cluster_resources().get('CPU')}")
    for count in args.tenants:
        # Two disjoint sets of tenants, each with its own day, so neither run finds the other's invoices.
        one_day = Period(midnight - timedelta(days=2), midnight - timedelta(days=1))
        ray_day = Period(midnight - timedelta(days=1), midnight)
        asyncio.run(seed(settings, f"seq{RUN}-{count}", count, one_day))
        asyncio.run(seed(settings, f"ray{RUN}-{count}", count, ray_day))
        rate_one = sequential(settings, f"seq{RUN}-{count}", count, one_day)
        rate_ray = on_ray(settings, f"ray{RUN}-{count}", count, ray_day)
        print(
            f"{count:,} tenants, invoices without PDFs: one process {rate_one:,.0f}/s, "
            f"Ray {rate_ray:,.0f}/s, ratio {rate_ray / rate_one:.2f}"
        )
    pdfs(settings, args.pdfs)
    stack.stop()


if __name__ == "__main__":
    main()
