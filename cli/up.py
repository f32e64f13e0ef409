"""`billing up`: start the whole stack and serve until interrupted."""

from __future__ import annotations

import argparse
import os
import signal
import threading


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")


def run(args: argparse.Namespace) -> int:
    import ray

    from infra.settings import Settings
    from serve.serve_config import SHIPPED
    from serve.stack import start_stack

    settings = Settings.from_env()
    # One file describes the deployment (serve_config.yaml); a port given in the environment
    # means "these settings instead", as the tests and benchmarks do.
    if settings.serve_config is None and not os.environ.get("BILLING_HTTP_PORT") and SHIPPED.exists():
        settings = settings.with_(serve_config=SHIPPED)
    stack = start_stack(settings, dashboard=not args.no_dashboard)
    dashboard = ray.get_runtime_context().worker.node.address_info.get("webui_url") or "(not started)"
    print(f"API        {stack.api_url}/api/v1", flush=True)
    print(f"OpenAPI    {stack.api_url}/docs", flush=True)
    print(
        f"Ray        http://{dashboard}" if "://" not in dashboard else f"Ray        {dashboard}", flush=True
    )
    print(f"Data dir   {stack.settings.data_dir}", flush=True)
    print("Serving; Ctrl-C flushes every shard and stops.", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        # Wake every second: a signal delivered to one of Ray's threads only runs its Python
        # handler once the main thread is back in the interpreter.
        while not stopped.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    stack.stop()
    ray.shutdown()
    return 0
