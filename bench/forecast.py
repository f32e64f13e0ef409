"""Usage forecasting throughput: tenants/s at 1,000 and 10,000 tenants, Ray tasks on 2 CPUs against
one process (the same batches, one after another). Prints figures; asserts nothing.

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

from forecasting.generator import HistorySpec
from forecasting.generator_store import generate
from forecasting.usage_run import HISTORY_DAYS, run_usage_forecast
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; the best counts")
    args = parser.parse_args()

    # Forecasting needs no Redis: a placeholder URL keeps `resolve` from starting an embedded one.
    env = Settings.from_env()
    base = resolve(
        env.with_(data_dir=Path(".billing-bench").resolve(), redis_url=env.redis_url or "redis://unused")
    )
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
