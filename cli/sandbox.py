"""`billing sandbox`: run the local Stripe, PayPal and Vault (payments/sandbox) until interrupted,
and print the environment that points `billing up` at them."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stripe-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--paypal-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--vault-port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--root-certificate",
        type=Path,
        default=None,
        help="where to write the local PayPal root CA (default: <data dir>/sandbox-paypal-root.pem)",
    )


def run(args: argparse.Namespace) -> int:
    from infra.settings import Settings
    from payments.sandbox import Sandbox

    root = args.root_certificate or Settings.from_env().data_dir / "sandbox-paypal-root.pem"
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with Sandbox(root.resolve(), args.stripe_port, args.paypal_port, args.vault_port) as sandbox:
        print(f"Stripe     {sandbox.stripe.url}", flush=True)
        print(f"PayPal     {sandbox.paypal.url}  (approve an order: GET /checkoutnow?token=ORDER)", flush=True)
        print(f"Vault      {sandbox.vault.url}  (KV v2 at '{sandbox.vault.mount}', in memory)", flush=True)
        print("\n# Point `billing up` at the Stripe and PayPal here:", flush=True)
        environment = sandbox.environment()
        for name in sorted(environment):
            if name.startswith("VAULT_"):
                continue
            print(f"export {name}={shlex.quote(environment[name])}", flush=True)
        print(
            "# and, to keep the field-encryption keys in this Vault (they are lost when it stops):\n"
            f"# export VAULT_ADDR={environment['VAULT_ADDR']} VAULT_TOKEN={environment['VAULT_TOKEN']}",
            flush=True,
        )
        print("\nServing; Ctrl-C stops.", flush=True)
        while not stopped.wait(1):
            pass
    return 0
