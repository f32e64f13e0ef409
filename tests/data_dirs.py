"""Data dirs for embedded servers, kept outside pytest's tmp_path.

Run as root, the embedded PostgreSQL runs as user `pgserver` (pgserver's rule), so the parents of
its data dir must let that user through. Every pytest session that starts meanwhile makes
/tmp/pytest-of-root private again (0700), and a server under it loses its own data dir
("PANIC: could not open pg_control: Permission denied"): two sessions on one machine broke each
other that way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def own_data_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory for embedded servers, removed afterwards (stop them first)."""
    path = Path(tempfile.mkdtemp(prefix=f"billing-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
