"""Redis servers a test runs itself: a primary, its replicas and, when asked, Sentinels watching
them (Debian's redis-server and redis-sentinel), on free ports, with their files under `root`."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.ports import free_ports

SENTINEL_MASTER = "billing"


@dataclass
class RedisHA:
    """A Redis primary with replicas and Sentinels (a majority quorum), processes of a test."""

    root: Path
    primary: int
    replicas: list[int]
    sentinels: list[int]
    processes: dict[int, subprocess.Popen[bytes]]

    @classmethod
    def start(cls, root: Path, replicas: int = 2, sentinels: int = 3) -> RedisHA:
        """Started, with every replica linked to the primary and every Sentinel seeing them all."""
        root.mkdir(parents=True, exist_ok=True)
        primary, *replica_ports = free_ports(1 + replicas)
        ha = cls(root, primary, replica_ports, free_ports(sentinels) if sentinels else [], {})
        try:
            for port in [primary, *replica_ports]:
                follow = f"replicaof 127.0.0.1 {primary}\n" if port != primary else ""
                ha._run(["redis-server"], port, REDIS_CONF.format(port=port, dir=root) + follow)
            for port in ha.sentinels:
                quorum = len(ha.sentinels) // 2 + 1
                conf = SENTINEL_CONF.format(
                    port=port, dir=root, master=SENTINEL_MASTER, primary=primary, quorum=quorum
                )
                ha._run(["redis-sentinel"], port, conf)
            until(ha._linked, "the replicas to follow the primary", 60)
            until(ha._watched, "the Sentinels to see the replicas and each other", 60)
        except BaseException:
            ha.stop()
            raise
        return ha

    def _run(self, command: list[str], port: int, conf: str) -> None:
        path = self.root / f"{port}.conf"
        path.write_text(conf)
        log = (self.root / f"{port}.log").open("w")
        self.processes[port] = subprocess.Popen([*command, str(path)], stdout=log, stderr=log)
        until(lambda: _pings(port), f"redis on {port}", 30)

    def _linked(self) -> bool:
        """Every replica is online: its full sync is over and it takes the stream of writes."""
        with redis.Redis(port=self.primary, socket_timeout=1) as primary:
            replication = primary.info("replication")
        states = [replication.get(f"slave{n}", {}).get("state") for n in range(len(self.replicas))]
        return states == ["online"] * len(self.replicas)

    def _watched(self) -> bool:
        for port in self.sentinels:
            with redis.Redis(port=port, socket_timeout=1) as sentinel:
                replicas = sentinel.sentinel_slaves(SENTINEL_MASTER)
                master = sentinel.sentinel_master(SENTINEL_MASTER)
            if (
                len([r for r in replicas if "s_down" not in r["flags"]]) < len(self.replicas)
                or master["num-other-sentinels"] < len(self.sentinels) - 1
            ):
                return False
        return True

    def master_port(self) -> int:
        for port in self.sentinels:
            try:
                with redis.Redis(port=port, socket_timeout=1) as sentinel:
                    return int(sentinel.sentinel_get_master_addr_by_name(SENTINEL_MASTER)[1])
            except redis.RedisError:
                continue
        raise AssertionError("no Sentinel answers")

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait()

    def pause(self, port: int) -> None:
        """The server stops (SIGSTOP): connected, but it reads and answers nothing."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a paused one, too, dies at once
                process.kill()
                process.wait()


REDIS_CONF = """port {port}
bind 127.0.0.1
protected-mode no
dir {dir}
dbfilename dump-{port}.rdb
save ""
appendonly no
"""
# Down after a second without an answer, as tests/test_multinode.py's node health checks.
SENTINEL_CONF = """port {port}
bind 127.0.0.1
protected-mode no
dir {dir}
sentinel monitor {master} 127.0.0.1 {primary} {quorum}
sentinel down-after-milliseconds {master} 1000
sentinel failover-timeout {master} 10000
sentinel parallel-syncs {master} 1
"""


def until(condition: Callable[[], object], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _pings(port: int) -> bool:
    try:
        with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False
