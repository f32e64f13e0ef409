"""`billing sandbox` runs the local Stripe, PayPal and Vault until interrupted, printing the
environment that points the service at them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_billing_sandbox_serves_until_sigint(tmp_path: Path) -> None:
    env = os.environ | {"BILLING_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sandbox"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        while not any(line.startswith("Serving") for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", "".join(lines), re.MULTILINE))
        assert {"STRIPE_API_KEY", "STRIPE_API_BASE", "PAYPAL_BASE_URL", "PAYPAL_ROOT_CERTIFICATE"} <= set(exports)
        assert Path(exports["PAYPAL_ROOT_CERTIFICATE"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
        customer = httpx.post(
            f"{exports['STRIPE_API_BASE']}/v1/customers",
            headers={"authorization": f"Bearer {exports['STRIPE_API_KEY']}"},
            data={"email": "a@example.com"},
        )
        assert customer.status_code == 200, customer.text
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
