"""`billing invoice-run --period YYYY-MM`: invoice every tenant for a month on Ray tasks.

Idempotent and resumable: run it again after an interruption and only the missing invoices are
made. Also a Ray job: `ray job submit --working-dir . -- python -m cli.main invoice-run --period …`.
"""

from __future__ import annotations

import argparse
import re
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", required=True, help="the month, YYYY-MM (it must have ended)")
    parser.add_argument("--batch-size", type=int, default=50, help="tenants per Ray task")
    parser.add_argument("--draft", action="store_true", help="leave the invoices as drafts")


def run(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"\d{4}-\d{2}", args.period):
        print("billing invoice-run: --period: a month as YYYY-MM, such as 2026-10", file=sys.stderr)
        return 2
    from datetime import UTC, datetime

    from infra.database import migrate
    from infra.embedded import resolve
    from infra.run_store import LostLease
    from infra.settings import Settings
    from invoicing.run import run_period
    from pricing.periods import Period
    from serve.stack import start_ray

    year, month = (int(part) for part in args.period.split("-"))
    period = Period.calendar_month(year, month)
    if period.end > datetime.now(UTC):
        print(f"billing invoice-run: --period: {args.period} has not ended yet", file=sys.stderr)
        return 2
    settings = resolve(Settings.from_env())
    migrate(settings.resolved_database_url())
    start_ray(settings, dashboard=False)

    def progress(done: int, total: int) -> None:
        width = 40
        filled = width * done // max(total, 1)
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tenants", end="", flush=True)

    try:
        summary = run_period(settings, period, args.batch_size, finalize=not args.draft, progress=progress)
    except LostLease as error:
        # Our heartbeat came later than BILLING_RUN_LEASE_SECONDS: a replica's scheduler took the
        # run over and finishes it (what this process made stays; nothing is made twice).
        print(f"\nbilling invoice-run: {error}: taken over, it finishes there (GET /api/v1/invoice-runs)")
        return 3
    print()
    print(f"period {args.period}: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())))
    for currency, total in sorted(summary.totals.items()):
        print(f"  {currency.upper()} {total}")
    for failure in summary.failures[:20]:
        print(f"  failed {failure['tenant_id']}: {failure['error']}")
    return 1 if summary.failures else 0
