"""Usage forecasting accuracy and throughput. Prints figures; asserts nothing.

Accuracy (no database): on generated histories, the backtest `billing forecast usage` prints (the
last 30 days held out, the model fitted on the days before) beside the bound no forecast beats,
the generator's noise-free median (`History.oracle_usage`) scored the same way: once knowing
every disengagement begun a week before the origin (a week of decay is what tells it from
noise), once knowing even those begun the day before. CPU seconds per 1,000 tenants of fitting,
forecasting and backtesting them (two fits each).

Throughput: tenants/s at 1,000 and 10,000 tenants, Ray tasks on 2 CPUs against one process (the
same batches, one after another).

    .venv/bin/python bench/forecast.py --accuracy-only
    DATABASE_URL=postgresql://... .venv/bin/python bench/forecast.py [--tenants 1000 10000]

Works on a throwaway database (created next to DATABASE_URL's, dropped at the end) holding a
generated history of daily usage rows; each run fits, forecasts, projects the month-end invoice
and stores its forecasts, as `billing forecast usage` does (the backtest is left out: it is an
evaluation, not part of forecasting).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray

from bench.servers import bench_settings
from forecasting.generator import HistorySpec, simulate
from forecasting.generator_store import generate
from forecasting.usage_model import summarise
from forecasting.usage_run import HISTORY_DAYS, UsageJob, fit_batch, run_usage_forecast
from forecasting.workflows import usage_bound
from infra.database import migrate
from infra.embedded import resolve
from infra.settings import Settings


async def _database(url: str, name: str, create: bool) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await conn.execute(
            f'CREATE DATABASE "{name}"' if create else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def _settle(url: str) -> None:
    """Vacuum and analyze what the last run wrote, so autovacuum does not take CPU from the next."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def measure(settings: Settings, ids: list[str], origin, parallel: bool, batch_size: int) -> float:
    asyncio.run(_settle(settings.database_url))
    run = run_usage_forecast(
        settings, ids=ids, origin=origin, parallel=parallel, backtest=False, batch_size=batch_size
    )
    return len(ids) / run.seconds


# (tenants, seed): the demo's history, the tests', and six no choice of the model was tuned on.
ACCURACY_HISTORIES = ((300, 7), (400, 7), *((300, seed) for seed in range(21, 27)))


def accuracy() -> None:
    print(
        f"{'history':>14} {'series':>6} {'MASE':>6} {'naive':>6} {'cover90':>7} {'bound7d':>7} {'bound0d':>7} {'CPU s/1k':>8}"
    )
    for tenants, seed in ACCURACY_HISTORIES:
        history = simulate(HistorySpec(prefix="acc-", tenants=tenants, seed=seed))
        end = history.spec.days
        job = UsageJob("accuracy", history.day(end), store=False)
        started = time.process_time()
        result = summarise(fit_batch(list(history.tenant_ids), history.daily[:, -HISTORY_DAYS:], job).scores)
        cpu = (time.process_time() - started) / tenants * 1000
        origin = end - job.horizon
        bounds = [usage_bound(history, origin, job.horizon, seen) for seen in (7, 0)]
        print(
            f"{f'{tenants} seed {seed}':>14} {result.series:>6} {result.mase:>6.3f} {result.naive_mase:>6.3f}"
            f" {result.coverage_90:>7.1%} {bounds[0]:>7.3f} {bounds[1]:>7.3f} {cpu:>8.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--accuracy-only", action="store_true", help="no database: accuracy figures only")
    args = parser.parse_args()
    accuracy()
    if args.accuracy_only:
        return

    # Forecasting needs no Redis: a placeholder URL keeps `resolve` from starting an embedded one.
    with bench_settings() as env:
        throughput(resolve(env.with_(redis_url=env.redis_url or "redis://unused")), args)


def throughput(base: Settings, args: argparse.Namespace) -> None:
    """Tenants forecast per second in one process and on Ray, in a database of its own."""
    name = f"billing_bench_forecast_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(_database(base.database_url, name, create=True))
    try:
        settings = base.with_(database_url=url)
        migrate(url)
        spec = HistorySpec(
            prefix="bench-", tenants=max(args.tenants), days=HISTORY_DAYS + 8, hours_per_day=1, seed=1
        )
        started = time.perf_counter()
        written = generate(settings, spec, invoices_too=False)
        print(
            f"history: {spec.tenants} tenants x {spec.days} days, {written.usage_rows:,} usage rows "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ids = list(written.history.tenant_ids)
        # Warm-up: Ray workers import scikit-learn and SQLAlchemy once; so does this process.
        measure(settings, ids[: args.batch_size * args.cpus], spec.end, True, args.batch_size)
        measure(settings, ids[:50], spec.end, False, args.batch_size)
        print(f"{'tenants':>8} {'one process':>14} {'Ray, ' + str(args.cpus) + ' CPUs':>14} {'ratio':>7}")
        for count in sorted(args.tenants):
            # Best of two each, interleaved: one noisy run (a machine shared with PostgreSQL) says little.
            alone, on_ray = 0.0, 0.0
            for _ in range(args.repeat):
                alone = max(alone, measure(settings, ids[:count], spec.end, False, args.batch_size))
                on_ray = max(on_ray, measure(settings, ids[:count], spec.end, True, args.batch_size))
            print(f"{count:>8} {alone:>10.0f} t/s {on_ray:>10.0f} t/s {on_ray / alone:>6.2f}x", flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        asyncio.run(_database(base.database_url, name, create=False))


if __name__ == "__main__":
    main()
