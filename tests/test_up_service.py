"""`billing up` behaves like a service (issue 13): /api/* answers 503 problem+json with Retry-After
(never 404) until the API is deployed; the embedded PostgreSQL and Redis it started are restarted
when they die; SIGINT stops it within 10 s leaving no process it started (Ray, HAProxy, the
embedded servers), SIGTERM with --keep-servers leaves only the embedded servers.

Real processes and real signals, on free ports, with the embedded servers (DATABASE_URL and
REDIS_URL unset for the child)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.data_dirs import own_data_dir
from tests.ports import free_port, free_ports

ROOT = Path(__file__).resolve().parents[1]
START_S = 240  # embedded initdb, Ray and Serve on a busy 2-core machine
STOP_S = 10


def descendants(pid: int) -> set[int]:
    """Every living process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def server_pids(data_dir: Path) -> dict[str, int]:
    pids = {}
    for name, path in (("postgres", "postgres/postmaster.pid"), ("redis", "redis/redis.pid")):
        try:
            pids[name] = int((data_dir / path).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return pids


@dataclass
class Up:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path
    answers: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what changed to)
    seen: set[int] = field(default_factory=set)  # every process it started, while it ran

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def watch(self, until: threading.Event) -> None:
        """Post to /api/v1/usage every 20 ms from launch, recording each change of answer."""
        began, last = time.monotonic(), None
        with httpx.Client(timeout=5) as client:
            while not until.is_set():
                try:
                    response = client.post(f"{self.url}/api/v1/usage", json={})
                    answer = f"{response.status_code} {response.headers.get('content-type')}"
                    if response.status_code == 503:
                        answer += f" retry-after={response.headers.get('retry-after')}"
                except httpx.TransportError as error:
                    answer = type(error).__name__
                if answer != last:
                    self.answers.append((round(time.monotonic() - began, 2), answer))
                    last = answer
                self.seen |= descendants(self.process.pid) | set(server_pids(self.data_dir).values())
                time.sleep(0.02)


def start_up(tmp_path: Path, *flags: str) -> tuple[Up, threading.Event]:
    port, stats_port, metrics_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "BILLING_DATA_DIR": str(tmp_path / "data"),
        "BILLING_HTTP_PORT": str(port),
        "BILLING_REDIS_PREFIX": f"up-{uuid.uuid4().hex[:6]}",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--no-dashboard", *flags],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    up = Up(process, f"http://127.0.0.1:{port}", tmp_path / "data", log)
    done = threading.Event()
    threading.Thread(target=up.watch, args=(done,), daemon=True).start()
    deadline = time.monotonic() + START_S
    while "Serving;" not in up.output():
        assert process.poll() is None, up.output()
        assert time.monotonic() < deadline, up.output()
        time.sleep(0.2)
    return up, done


def stop(up: Up, signum: int) -> float:
    began = time.monotonic()
    up.process.send_signal(signum)
    try:
        assert up.process.wait(timeout=60) == 0, up.output()
    finally:
        if up.process.poll() is None:
            up.process.kill()
    return time.monotonic() - began


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    with own_data_dir("up") as where:  # not under tmp_path: see tests/data_dirs.py
        running, done = start_up(where)
        try:
            yield running
        finally:
            done.set()
            if running.process.poll() is None:
                running.process.kill()
            kill_all(running.seen | descendants(running.process.pid))


def test_the_starting_responder_keeps_a_reuseport_listener_off_the_port_until_it_closes() -> None:
    from serve.starting import PortInUse, StartingResponder

    port = free_port()
    with StartingResponder("127.0.0.1", port) as responder:
        assert responder.steering
        with pytest.raises(PortInUse):
            StartingResponder("127.0.0.1", port).open()
        late = socket.socket()  # as HAProxy binds with SERVE_SOCKET_REUSE_PORT_ENABLED=1
        late.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        late.bind(("127.0.0.1", port))
        late.listen(64)
        late.settimeout(0.2)
        for _ in range(20):
            response = httpx.post(f"http://127.0.0.1:{port}/api/v1/usage", json={"events": []})
            assert response.status_code == 503 and response.headers["retry-after"] == "2"
            assert response.headers["content-type"] == "application/problem+json"
        with pytest.raises(TimeoutError):
            late.accept()  # none of the 20 reached it
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        connection, _ = late.accept()  # now every connection does
        connection.close()
    late.close()


def test_until_the_api_is_deployed_it_answers_503_with_retry_after(up: Up) -> None:
    deadline = time.monotonic() + 10
    while not up.answers or up.answers[-1][1].startswith(("503", "Connect")):
        assert time.monotonic() < deadline, up.answers
        time.sleep(0.1)
    kinds = [answer for _, answer in up.answers]
    assert kinds[-1] == "401 application/problem+json", up.answers  # the API itself (no token)
    before = kinds[:-1]
    assert "503 application/problem+json retry-after=2" in before, up.answers
    assert set(before) <= {"ConnectError", "503 application/problem+json retry-after=2"}, up.answers


def test_a_killed_embedded_redis_is_restarted(up: Up) -> None:
    from infra.dev_keys import dev_secret
    from serve.auth import mint

    redis_pid = server_pids(up.data_dir)["redis"]
    os.kill(redis_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while "embedded Redis restarted" not in up.output():
        assert time.monotonic() < deadline, up.output()[-3000:]
        time.sleep(0.2)
    assert "embedded Redis under" in up.output() and "is down" in up.output()
    assert server_pids(up.data_dir)["redis"] != redis_pid
    kernel = mint(dev_secret(up.data_dir), "kernel")
    event = {
        "tenant_id": "up-test",
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"executions": 1},
        "event_id": uuid.uuid4().hex,
    }
    deadline = time.monotonic() + 30
    while True:  # the API's Redis clients reconnect on their own
        response = httpx.post(
            f"{up.url}/api/v1/usage", json=event, headers={"authorization": f"Bearer {kernel}"}, timeout=10
        )
        if response.status_code == 202:
            break
        assert response.status_code == 503 and time.monotonic() < deadline, response.text
        time.sleep(0.5)


def test_sigint_stops_it_within_10_s_leaving_no_process(up: Up) -> None:
    started = up.seen | descendants(up.process.pid)
    assert any("haproxy" in _cmdline(pid) for pid in started), "HAProxy was not seen running"
    took = stop(up, signal.SIGINT)
    assert took < STOP_S, (took, up.output()[-3000:])
    time.sleep(0.5)
    left = {pid: _cmdline(pid) for pid in started if alive(pid)}
    assert left == {}, left
    assert "Stopped in " in up.output()
    assert "killed by ray.kill" not in up.output() and "failed to shut down" not in up.output()


def test_sigterm_with_keep_servers_leaves_only_the_embedded_servers(embedded_dir: Path) -> None:
    from infra.embedded import stop_embedded

    try:
        running, done = start_up(embedded_dir, "--keep-servers")
    except BaseException:
        stop_embedded(embedded_dir / "data")  # kept by the failed start, as asked
        raise
    try:
        servers = server_pids(running.data_dir)
        assert set(servers) == {"postgres", "redis"}
        started = running.seen | descendants(running.process.pid)
        took = stop(running, signal.SIGTERM)
        assert took < STOP_S, (took, running.output()[-3000:])
        time.sleep(0.5)
        left = {pid for pid in started if alive(pid)}
        assert set(servers.values()) <= left
        assert {
            pid: _cmdline(pid) for pid in left - descendants(servers["postgres"]) - set(servers.values())
        } == {}
        assert "left running (--keep-servers)" in running.output()
    finally:
        done.set()
        stop_embedded(running.data_dir)
        kill_all(running.seen)


def _cmdline(pid: int) -> str:
    try:
        return (
            (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""
