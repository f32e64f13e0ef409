"""Local development secrets, kept under the data dir with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def dev_secret(data_dir: Path, name: str = "jwt-dev.key") -> str:
    """A random secret created on first use and reused after."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
