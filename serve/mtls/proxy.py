"""Runs nginx as the mTLS proxy in front of the API: renders serve/mtls/nginx.conf into a run
directory (config, pid, logs and temp files all inside it, so no root is needed) and starts
`nginx -p RUN_DIR -c nginx.conf -g 'daemon off;'` in the foreground.

Used by `billing proxy` (ops) and by tests/test_mtls.py. Why nginx: Ray Serve 2.60 serves HTTPS
but cannot ask for, or verify, a client certificate.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2

from infra.certificates import CA, SERVER
from serve.client_certificates import SUBJECT_HEADER
from serve.guards import MAX_BODY_BYTES
from serve.problems import MAYBE_PART_ACCEPTED, PROBLEM_TYPES

TEMPLATE = Path(__file__).with_name("nginx.conf")
# host:port, host a name, an IPv4 address or a bracketed IPv6 one. Anything else is refused: the
# values are pasted into the config, where a stray ';' or '}' would add directives.
ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})")
TEMP_DIRS = ("body", "proxy", "fastcgi", "uwsgi", "scgi")


class ProxyFailed(RuntimeError):
    """nginx could not be configured or did not start; the message carries its own words."""


@dataclass(frozen=True)
class ProxyConfig:
    certs: Path  # holds ca.pem (the CA client certificates must chain to), server.pem, server-key.pem
    listen: str = "0.0.0.0:8443"
    upstream: str = "127.0.0.1:8000"  # the API (Ray Serve bound to loopback or a private address)

    def files(self) -> dict[str, Path]:
        certs = self.certs.resolve()
        return {
            "client_ca": certs / f"{CA}.pem",
            "server_certificate": certs / f"{SERVER}.pem",
            "server_key": certs / f"{SERVER}-key.pem",
        }


def find_nginx() -> str | None:
    """nginx on PATH, or Debian's /usr/sbin/nginx (not on an unprivileged user's PATH)."""
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


def render(config: ProxyConfig, run_dir: Path) -> str:
    for name, value in (("listen", config.listen), ("upstream", config.upstream)):
        match = ADDRESS.fullmatch(value)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ProxyFailed(f"{name}: expected HOST:PORT (e.g. 127.0.0.1:8000), got {value!r}")
    files = config.files()
    for path in files.values():
        if not path.is_file():
            raise ProxyFailed(f"{path} is missing (create the files with `billing certs --out DIR`)")
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
    )
    return environment.from_string(TEMPLATE.read_text()).render(
        listen=config.listen,
        upstream=config.upstream,
        subject_header=SUBJECT_HEADER,
        max_body_bytes=MAX_BODY_BYTES,
        max_body_mib=MAX_BODY_BYTES // (1024 * 1024),
        problems=PROBLEM_TYPES,
        maybe_part_accepted=MAYBE_PART_ACCEPTED,
        worker_user=_worker_user(run_dir),
        **{name: str(path) for name, path in files.items()},
    )


def _worker_user(run_dir: Path) -> str | None:
    # Started as root, nginx runs its workers as `nobody`, who cannot write the run directory's
    # temp files; they take the directory owner's identity instead. Unprivileged: no change.
    if os.geteuid() != 0:
        return None
    return pwd.getpwuid(run_dir.stat().st_uid).pw_name


def prepare(config: ProxyConfig, run_dir: Path) -> list[str]:
    """Writes the config and the directories nginx needs; the command line that starts it."""
    nginx = find_nginx()
    if nginx is None:
        raise ProxyFailed("nginx is not installed (apt-get install nginx-light)")
    run_dir = run_dir.resolve()
    for sub in ("logs", *(f"tmp/{name}" for name in TEMP_DIRS)):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    (run_dir / "nginx.conf").write_text(render(config, run_dir))
    # -e: errors to stderr even before the config is read (a packaged default may be /var/log).
    return [nginx, "-p", f"{run_dir}/", "-e", "stderr", "-c", "nginx.conf", "-g", "daemon off;"]


@dataclass
class RunningProxy:
    process: subprocess.Popen[bytes]
    run_dir: Path

    def stop(self, timeout_s: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests in flight
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(config: ProxyConfig, run_dir: Path, timeout_s: float = 10) -> RunningProxy:
    """nginx in the background (for tests), once it accepts connections; its stderr goes to
    RUN_DIR/logs/nginx.log."""
    command = prepare(config, run_dir)
    log_path = run_dir / "logs" / "nginx.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    proxy = RunningProxy(process, run_dir)
    listening = ADDRESS.fullmatch(config.listen)
    assert listening is not None  # prepare() refused the config otherwise
    host, port = listening.group("host", "port")
    host = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host.strip("[]")
    deadline = time.monotonic() + timeout_s
    while not _accepts(host, int(port)):
        if process.poll() is not None or time.monotonic() > deadline:
            proxy.stop()
            raise ProxyFailed(f"nginx did not start: {log_path.read_text().strip()}")
        time.sleep(0.05)
    return proxy


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
