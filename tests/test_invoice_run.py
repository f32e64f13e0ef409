"""The cluster-wide invoice run on Ray tasks: idempotent, and resumable after being killed."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from infra.database import create_engine
from invoicing.run import run_period
from pricing.periods import Period
from tests.conftest import register_tenant
from tests.stack_support import cli_env

NOW = datetime.now(UTC)
LAST_MONTH = Period.calendar_month(NOW.year - (NOW.month == 1), (NOW.month - 2) % 12 + 1)


def _register(api, tokens, prefix: str, count: int) -> list[str]:
    return [register_tenant(api, tokens, f"{prefix}-{n:03d}", region="TX") for n in range(count)]


def _query(settings, sql: str, **params):
    async def run():
        engine = create_engine(settings.database_url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).all()
        await engine.dispose()
        return rows

    return asyncio.run(run())


def _invoices_per_tenant(settings, prefix: str) -> dict[str, int]:
    rows = _query(
        settings,
        "SELECT tenant_id, count(*) FROM invoices WHERE tenant_id LIKE :p "
        "AND period_start = :s GROUP BY tenant_id",
        p=f"{prefix}-%",
        s=LAST_MONTH.start,
    )
    return dict(rows)


def _numbers_are_gapless(settings) -> bool:
    rows = _query(
        settings, "SELECT number FROM invoices WHERE issuer = :i AND number IS NOT NULL", i=settings.issuer
    )
    sequences = sorted(int(number.rsplit("-", 1)[1]) for (number,) in rows)
    return sequences == list(range(1, len(sequences) + 1))


def test_a_run_invoices_every_tenant_once_and_a_rerun_makes_nothing_new(api, tokens, stack):
    prefix = f"run-{uuid.uuid4().hex[:6]}"
    ids = _register(api, tokens, prefix, 12)
    first = run_period(stack.settings, LAST_MONTH, batch_size=5)
    assert first.outcomes["created"] >= len(ids)
    again = run_period(stack.settings, LAST_MONTH, batch_size=5)
    assert (
        again.outcomes["created"] == 0
        and again.outcomes["existing"] == first.outcomes["created"] + first.outcomes["existing"]
    )
    assert _invoices_per_tenant(stack.settings, prefix) == {tenant: 1 for tenant in ids}
    assert _numbers_are_gapless(stack.settings)


def test_a_killed_run_resumes_to_exactly_one_invoice_per_tenant(api, tokens, stack):
    prefix = f"kill-{uuid.uuid4().hex[:6]}"
    ids = _register(api, tokens, prefix, 40)
    settings = stack.settings
    env = cli_env(settings)
    period = f"{LAST_MONTH.start.year}-{LAST_MONTH.start.month:02d}"
    run = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "invoice-run", "--period", period, "--batch-size", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while sum(_invoices_per_tenant(settings, prefix).values()) < 4 and run.poll() is None:
        assert time.monotonic() < deadline, "the run made no invoices"
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert sum(_invoices_per_tenant(settings, prefix).values()) < len(ids), "the run finished before the kill"
    run_period(settings, LAST_MONTH, batch_size=10)
    assert _invoices_per_tenant(settings, prefix) == {tenant: 1 for tenant in ids}
    assert _numbers_are_gapless(settings)
