"""Debian's headless Chromium as the browser tests and bench/pages.py drive it (Playwright)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox: CI runs as root. The rest keeps Chromium from reaching out on its own (updates,
# sync, QUIC probes), so the only requests are the pages' own.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
