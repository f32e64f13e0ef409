"""`billing up`: start the whole stack and serve until interrupted.

Ctrl-C, SIGINT and SIGTERM stop it the same way, also while it is starting: the shards flush,
Serve stops (its HAProxy with it), Ray stops, and the embedded PostgreSQL and Redis stop too
unless --keep-servers. While it serves, the embedded servers it uses are supervised
(infra/embedded.py Supervisor). Until the API is deployed, /api/* answers 503 with Retry-After.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serve.stack import Stack

log = logging.getLogger("billing.up")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    parser.add_argument(
        "--keep-servers",
        action="store_true",
        help="leave the embedded PostgreSQL and Redis running when stopping (the next command reuses them)",
    )


class Interrupted(Exception):
    """A stop signal arrived while the stack was starting."""


class StopSignals:
    """SIGINT and SIGTERM both ask for a stop. Installed explicitly for both: a process started
    in the background by a non-interactive shell inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt (issue 13: `kill -INT` did nothing for 90 s)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.received: str | None = None
        self.received_at = 0.0
        self._starting = False
        self.install()

    def install(self) -> None:
        """(Again after ray.init, which makes SIGTERM a bare sys.exit.)"""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received, self.received_at = signal.Signals(signum).name, time.monotonic()
        self.requested.set()
        if self._starting:
            self._starting = False  # raise once; the clean-up itself is not interrupted
            raise Interrupted(self.received)

    @contextmanager
    def interrupting(self) -> Iterator[None]:
        """Within this block a stop signal raises Interrupted (start-up is not worth finishing)."""
        self._starting = True
        try:
            yield
        finally:
            self._starting = False

    def wait(self) -> None:
        # Wake every second: a signal delivered to one of Ray's threads only runs its Python
        # handler once the main thread is back in the interpreter.
        while not self.requested.wait(1):
            pass


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signals = StopSignals()
    import ray

    from infra.embedded import Supervisor, embedded_in_use, stop_servers
    from infra.settings import Settings
    from serve.serve_config import SHIPPED
    from serve.stack import shutdown_serve, start_stack

    settings = Settings.from_env()
    # One file describes the deployment (serve_config.yaml); a port given in the environment
    # means "these settings instead", as the tests and benchmarks do.
    if settings.serve_config is None and not os.environ.get("BILLING_HTTP_PORT") and SHIPPED.exists():
        settings = settings.with_(serve_config=SHIPPED)
    embedded = embedded_in_use(settings)
    # Stopped at the end unless --keep-servers: the ones it starts, and the ones a former
    # `billing up --keep-servers` left under this data dir (as `billing demo` does).
    started = set(embedded)
    stack: Stack | None = None
    supervisor: Supervisor | None = None
    try:
        with signals.interrupting():
            stack = start_stack(settings, dashboard=not args.no_dashboard)
        signals.install()
        if embedded:
            supervisor = Supervisor(stack.settings.data_dir, embedded).start()
        _print_addresses(stack)
        print("Serving; Ctrl-C (or SIGTERM) flushes every shard and stops.", flush=True)
        signals.wait()
    except Interrupted:
        pass
    finally:
        steps: list[str] = []
        began = step = time.monotonic()

        def took(what: str) -> None:
            nonlocal step
            steps.append(f"{what} {time.monotonic() - step:.1f} s")
            step = time.monotonic()

        if signals.received:
            log.info("stopping (%s, %.1f s ago)", signals.received, began - signals.received_at)
        if supervisor is not None:
            supervisor.stop()
            started |= supervisor.restarted
        try:
            if stack is not None:
                stack.stop()
                took("shards and Serve")
            elif ray.is_initialized():
                shutdown_serve()
        finally:
            # Ray and the embedded servers (the shards have flushed) stop side by side.
            kept = started if args.keep_servers else set()
            servers = [
                threading.Thread(target=stop_servers, args=(settings.data_dir, [name]))
                for name in started - kept
            ]
            for thread in servers:
                thread.start()
            ray.shutdown()
            for thread in servers:
                thread.join()
            took("Ray and embedded servers")
        note = f"; embedded {', '.join(sorted(kept))} left running (--keep-servers)" if kept else ""
        log.info("stopped in %.1f s (%s)%s", time.monotonic() - began, ", ".join(steps), note)
        print(f"Stopped in {time.monotonic() - began:.1f} s ({', '.join(steps)}){note}.", flush=True)
    # Everything it started has stopped; the interpreter's own exit (Ray's and pgserver's exit
    # hooks, module teardown) took 2-4 s more on a loaded machine, and has nothing left to do.
    sys.stderr.flush()
    os._exit(0)


def _print_addresses(stack: Stack) -> None:
    import ray

    from infra import metrics

    api_url = stack.api_url
    stats = os.environ.get("RAY_SERVE_HAPROXY_STATS_PORT", "8404")
    haproxy_metrics = os.environ.get("RAY_SERVE_HAPROXY_METRICS_PORT", "9101")
    dashboard = ray.get_runtime_context().worker.node.address_info.get("webui_url") or "(not started)"
    print(f"API        {api_url}/api/v1", flush=True)
    print(f"OpenAPI    {api_url}/docs", flush=True)
    print(f"Ray        {dashboard if '://' in dashboard else 'http://' + dashboard}", flush=True)
    print(f"Metrics    {metrics.endpoint()}", flush=True)
    print(
        f"HAProxy    stats port {stats}, metrics port {haproxy_metrics} (RAY_SERVE_HAPROXY_*_PORT)",
        flush=True,
    )
    print(f"Data dir   {stack.settings.data_dir}", flush=True)
