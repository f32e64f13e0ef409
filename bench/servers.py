"""Where a benchmark runs on embedded defaults, and what it leaves behind: nothing.

With DATABASE_URL / REDIS_URL unset, a benchmark starts PostgreSQL and Redis under its data dir.
Left running, they went on using the machine the next measurement ran on (a Redis a benchmark
left had 7-9% of a core during later runs); kept in one data dir, they grew with every run (3.3 GB
after a day of runs, the Redis AOF 1.2 GB, longer to replay than a start waits). So each run gets
a fresh data dir under `.billing-bench/` unless BILLING_DATA_DIR names one, and when it ends,
also by a failure, its embedded servers are stopped (as `billing demo` and `billing up` do) and a
data dir of its own is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.embedded import embedded_in_use, stop_servers
from infra.settings import Settings

ROOT = Path(".billing-bench")


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """Settings from the environment, in this run's data dir; see the module's docstring."""
    own = None
    if not os.environ.get("BILLING_DATA_DIR"):
        own = _fresh_dir()
        os.environ["BILLING_DATA_DIR"] = str(own)  # for the processes it starts, Ray's too
    settings = Settings.from_env()
    try:
        with embedded_stopped_after(settings):
            yield settings
    finally:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)


@contextmanager
def embedded_stopped_after(settings: Settings) -> Iterator[None]:
    """Run the block, then stop the embedded servers `settings` (unresolved) would use."""
    names = embedded_in_use(settings)
    try:
        yield
    finally:
        stop_servers(settings.data_dir, names)


def _fresh_dir() -> Path:
    ROOT.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=ROOT)).resolve()
