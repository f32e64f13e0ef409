"""Outbound webhooks by ONE delivery worker: prints figures, asserts only that every event arrived.

On a database of its own (created, migrated, dropped under DATABASE_URL's server) with REDIS_URL:
1,000 tenants (bench/invoice_run.py's, a day of usage each), each with its own webhook endpoint
subscribed to `invoice.finalized`, all served by one receiver (bench/webhook_receiver.py, uvicorn in
another process) that verifies every delivery with the `standardwebhooks` package and that
endpoint's secret. The worker is notifications/delivery_worker.py's loop as a replica runs it
(`run_forever`, the settings' interval and batch), in this process.

1. Deliveries/s sustained: a backlog of invoice.finalized events (one per tenant) committed at once,
   drained by the worker; the rate is from the worker's start to the receiver's last answer, and
   the CPU time of this process (the worker, the client, the DB driver) per delivery beside it.
2. Outbox lag under an invoice run: the tenants invoiced by `run_period` (as `billing invoice-run`
   does: Ray tasks of 50 tenants, a transaction each, on a local Ray with the shard actors and no
   API) while the worker runs; each event's lag is from its transaction's commit to the
   receiver's 2xx answer. The commit is seen from a third process polling every 20 ms (an
   event's transaction is visible once committed), so the lag may be understated by that much.

    DATABASE_URL=postgresql://... REDIS_URL=redis://... .venv/bin/python bench/webhook_deliveries.py [--tenants 1000]

The last lines are `key=value` pairs, for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path

import httpx
import ray
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from invoice_run import load_rates, seed  # bench/invoice_run.py, beside this file

from infra.database import create_database, create_engine, drop_database, migrate
from infra.field_encryption import FieldCipher, Keyring
from infra.settings import Settings
from invoicing.run import run_period
from notifications import endpoints, outbox
from notifications.context import NotificationContext
from notifications.delivery_worker import DeliveryWorker, WorkerConfig
from notifications.records import Caller
from pricing.periods import Period
from serve.stack import start_ray, start_shards
from tests.ports import free_port

RECEIVER = Path(__file__).with_name("webhook_receiver.py")
RUN_BATCH = 50  # tenants per transaction: run_period's default batch
Note = tuple[str, str, str | None, float, bool]  # bench/webhook_receiver.py's


async def register_endpoints(ctx: NotificationContext, tenant_ids: list[str], base_url: str) -> dict[str, str]:
    """One endpoint per tenant, as each tenant would register it; tenant -> secret."""
    secrets = {}
    for tenant_id in tenant_ids:
        made = await endpoints.create_endpoint(
            ctx, Caller(tenant_id), {"url": f"{base_url}/hooks/{tenant_id}", "event_types": ["invoice.finalized"]}
        )
        secrets[tenant_id] = made.secret
    return secrets


def start_receiver(port: int, secrets: dict[str, str], directory: Path) -> subprocess.Popen[bytes]:
    secrets_file = directory / "secrets.json"
    secrets_file.write_text(json.dumps(secrets))
    receiver = subprocess.Popen([sys.executable, str(RECEIVER), str(port), str(secrets_file)])
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/report", timeout=1)
            return receiver
        except httpx.TransportError:
            if time.monotonic() > deadline or receiver.poll() is not None:
                receiver.kill()
                raise RuntimeError("the receiver did not come up") from None
            time.sleep(0.2)


async def notes_until(
    client: httpx.AsyncClient, done: Callable[[list[Note]], bool], timeout_s: float = 600
) -> list[Note]:
    """The receiver's notes once `done(notes)` holds (polled twice a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        notes: list[Note] = [tuple(note) for note in (await client.get("/report")).json()]
        if done(notes):
            return notes
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(notes)} deliveries arrived in {timeout_s} s")
        await asyncio.sleep(0.5)


async def commits_seen(database_url: str, count: int, every_s: float = 0.02) -> dict[str, float]:
    """event id -> when (epoch s) that invoice.finalized event was first visible to another
    transaction, i.e. committed: each transaction's events are noticed together (by xmin) within
    `every_s` of its commit. No commit timestamps needed (track_commit_timestamp is off)."""
    engine = create_engine(database_url, pool_size=1)
    seen: dict[str, float] = {}
    transactions: set[str] = set()
    try:
        async with engine.connect() as conn:
            while len(seen) < count:
                query = "SELECT DISTINCT xmin::text FROM webhook_events WHERE type = 'invoice.finalized'"
                new = {xid for (xid,) in (await conn.execute(text(query))).all()} - transactions
                now = time.time()
                for xid in new:
                    events = await conn.execute(
                        text("SELECT event_id FROM webhook_events WHERE xmin::text = :xid"), {"xid": xid}
                    )
                    seen.update(dict.fromkeys(events.scalars(), now))
                transactions |= new
                await conn.commit()  # a fresh snapshot for the next look
                await asyncio.sleep(every_s)
    finally:
        await engine.dispose()
    return seen


def watch_commits(database_url: str, count: int) -> dict[str, float]:
    """commits_seen in a process of its own, so the worker's loop cannot delay what it notes."""
    return asyncio.run(commits_seen(database_url, count))


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 1000) - 1]


async def measure(settings: Settings, tenant_ids: list[str], period: Period, directory: Path) -> dict[str, str]:
    engine = create_engine(settings.resolved_database_url())
    cipher = FieldCipher(Keyring.generate())
    ctx = NotificationContext(engine, cipher, True, settings.webhook_secret_grace_s, settings.webhook_retry_window_s)
    port = free_port()
    secrets = await register_endpoints(ctx, tenant_ids, f"http://127.0.0.1:{port}")
    receiver = start_receiver(port, secrets, directory)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    worker_task = None
    try:
        # 1. A backlog, one event per tenant, then the worker starts on it.
        async with engine.begin() as conn:
            backlog = {
                await outbox.record(conn, "invoice.finalized", t, {"invoice_id": uuid.uuid4(), "total": "99.00"})
                for t in tenant_ids
            }
        worker = DeliveryWorker(engine, cipher, WorkerConfig.of(settings))
        started, cpu = time.time(), time.process_time()
        worker_task = asyncio.create_task(worker.run_forever())
        notes = await notes_until(client, lambda notes: len({n[0] for n in notes if n[4]} & backlog) == len(backlog))
        cpu_s = time.process_time() - cpu
        last = max(n[3] for n in notes if n[0] in backlog)
        rate = len(backlog) / (last - started)

        # 2. The invoice run (run_period: Ray tasks of 50 tenants, a transaction each), while the
        # worker goes on; its commits watched from another process.
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            watching = loop.run_in_executor(pool, watch_commits, settings.resolved_database_url(), len(backlog) + len(tenant_ids))
            run_started = time.time()
            summary = await asyncio.to_thread(
                run_period, settings, period, RUN_BATCH, True, False, None, tenant_ids, "bench"
            )
            run_s = time.time() - run_started
            committed = await watching
        assert summary.outcomes["created"] == len(tenant_ids), summary.outcomes
        run_events = set(committed) - backlog

        def acknowledged(notes: list[Note]) -> dict[str, float]:
            """event id -> when the receiver first acknowledged it, for the run's events."""
            first: dict[str, float] = {}
            for event_id, _, _, at, verified in notes:
                if verified and event_id in run_events:
                    first[event_id] = min(at, first.get(event_id, at))
            return first

        notes = await notes_until(client, lambda notes: len(acknowledged(notes)) == len(run_events))
        lags = [at - committed[event_id] for event_id, at in acknowledged(notes).items()]
    finally:
        if worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        await client.aclose()
        receiver.kill()
        await engine.dispose()
    ids = [n[0] for n in notes]
    return {
        "webhook_deliveries_per_s": f"{rate:.0f}",
        "webhook_cpu_ms_per_delivery": f"{1000 * cpu_s / len(backlog):.2f}",
        "backlog_events": str(len(backlog)),
        "invoice_run_tenants": str(len(tenant_ids)),
        "invoice_run_s": f"{run_s:.1f}",
        "outbox_lag_p50_s": f"{percentile(lags, 0.5):.2f}",
        "outbox_lag_p99_s": f"{percentile(lags, 0.99):.2f}",
        "outbox_lag_max_s": f"{max(lags):.2f}",
        "unverified": str(sum(1 for n in notes if not n[4])),
        "duplicates": str(len(ids) - len(set(ids))),
        "worker_interval_s": f"{settings.notifications_interval_s:g}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    args = parser.parse_args()
    base = Settings.from_env()
    assert base.database_url and base.redis_url, "DATABASE_URL and REDIS_URL name the servers to use"
    run = uuid.uuid4().hex[:8]
    name = f"bench_webhooks_{run}"
    url = asyncio.run(create_database(base.database_url, name))
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    period = Period(midnight - timedelta(days=1), midnight)
    prefix = f"wh{run}"
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = base.with_(
                database_url=url,
                redis_prefix=f"bench-webhooks-{run}",
                data_dir=Path(directory),
                fx_source="bench rates",
                webhook_allow_private=True,  # the receiver is on 127.0.0.1
            )
            migrate(url)
            asyncio.run(seed(settings, prefix, args.tenants, period))
            start_ray(settings, dashboard=False)
            start_shards(settings)
            asyncio.run(load_rates(settings, [(midnight - timedelta(days=d)).date() for d in range(40)]))
            tenant_ids = [f"{prefix}-{n:05d}" for n in range(args.tenants)]
            figures = asyncio.run(measure(settings, tenant_ids, period, Path(directory)))
    finally:
        ray.shutdown()
        asyncio.run(drop_database(base.database_url, name))
    load = os.getloadavg()[0]
    print(
        f"one worker: {figures['webhook_deliveries_per_s']} deliveries/s sustained "
        f"({figures['webhook_cpu_ms_per_delivery']} ms CPU each); invoice run of {args.tenants:,} tenants "
        f"({figures['invoice_run_s']} s): outbox lag p50 {figures['outbox_lag_p50_s']} s, "
        f"p99 {figures['outbox_lag_p99_s']} s, max {figures['outbox_lag_max_s']} s "
        f"({os.cpu_count()} CPUs, load average {load:.1f})"
    )
    for key, value in figures.items():
        print(f"{key}={value}")
    print(f"load_average_1m={load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
