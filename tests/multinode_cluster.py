"""A real multi-node Ray cluster on one machine, for tests: a head and worker nodes started with
`ray start`, each its own raylet, object store and CPUs, on ports chosen free, under a temporary
directory of its own, with token authentication (RAY_AUTH_MODE=token) as cluster.yaml runs it.

Every process it starts is found again by that directory (in its command line, or below one that
has it), so stopping it never touches another Ray on the machine: `ray stop` would stop them all.
A node is "lost" by kill -9 of its raylet and everything below it (workers, agents).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ports import free_ports

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 150 * 1024 * 1024
WORKER_PORTS = 40  # per node; workers of shards, replicas, tasks and Serve's own actors


@dataclass
class RayNode:
    name: str
    node_manager_port: int
    args: list[str]
    node_id: str = ""


@dataclass
class LocalCluster:
    root: Path
    env: dict[str, str]
    gcs_port: int
    dashboard_port: int
    nodes: dict[str, RayNode] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @classmethod
    def start(
        cls, root: Path, workers: int = 2, cpus: int = 1, extra_env: dict[str, str] | None = None
    ) -> LocalCluster:
        root.mkdir(parents=True, exist_ok=True)
        token = root / "auth_token"
        token.write_text(secrets.token_hex(32))
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0",
            **(extra_env or {}),
        }
        env.pop("RAY_ADDRESS", None)
        gcs, dashboard = free_ports(2)
        cluster = cls(root, env, gcs, dashboard)
        try:
            cluster._start_node("head", cpus, head=True)
            for n in range(workers):
                cluster._start_node(f"worker-{n + 1}", cpus, head=False)
            cluster._wait_alive(1 + workers)
            cluster._wait_schedulable()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_node(self, name: str, cpus: int, head: bool) -> RayNode:
        ports = free_ports(7 + WORKER_PORTS)
        node_manager, object_manager, agent, agent_grpc, runtime_env, metrics, client = ports[:7]
        args = [
            "--num-cpus", str(cpus),
            "--node-manager-port", str(node_manager),
            "--object-manager-port", str(object_manager),
            "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(runtime_env),
            "--metrics-export-port", str(metrics),
            "--worker-port-list", ",".join(map(str, ports[7:])),
            "--object-store-memory", str(OBJECT_STORE_BYTES),
            "--resources", f'{{"{_marker(name)}": 1}}',  # which node is which, in the state API
            "--disable-usage-stats",
        ]  # fmt: skip
        if head:
            args += [
                "--head", "--port", str(self.gcs_port), "--temp-dir", str(self.root / "ray"),
                "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(self.dashboard_port), "--ray-client-server-port", str(client),
            ]  # fmt: skip
        else:
            args += ["--address", self.address]
        node = RayNode(name, node_manager, args)
        self._ray_start(node)
        self.nodes[name] = node
        return node

    def _ray_start(self, node: RayNode) -> None:
        log = self.root / f"ray-start-{node.name}.log"
        with log.open("a") as out:
            done = subprocess.run(
                [RAY, "start", *node.args], check=False, env=self.env, stdout=out, stderr=out, timeout=180
            )
        if done.returncode != 0:
            raise RuntimeError(f"ray start {node.name} failed:\n{log.read_text()[-3000:]}")

    def _wait_alive(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            alive = self.alive_nodes()
            if len(alive) >= count:
                for name, node_id in alive.items():
                    self.nodes[name].node_id = node_id
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} of {count} Ray nodes came up")
            time.sleep(0.5)

    def _wait_schedulable(self, timeout_s: float = 60) -> None:
        """Until a driver sees every node's resources: the GCS lists a node alive before its
        resources reach the scheduler, and an actor placed on it meanwhile goes elsewhere."""
        markers = [_marker(name) for name in self.nodes]
        probe = (
            "import sys, time, ray; ray.init(address=sys.argv[1], log_to_driver=False)\n"
            "deadline = time.monotonic() + float(sys.argv[2])\n"
            "while not set(sys.argv[3:]) <= set(ray.available_resources()):\n"
            "    assert time.monotonic() < deadline, ray.available_resources()\n"
            "    time.sleep(0.2)\n"
        )
        subprocess.run(
            [sys.executable, "-c", probe, self.address, str(timeout_s), *markers],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout_s + 60,
        )

    def state(
        self,
        resource: str,
        filters: list[tuple[str, str, str | bool | int | float]] | None = None,
        detail: bool = False,
    ) -> list:
        """Ray's state API (`ray list actors` etc.) on this cluster: the dashboard, with its token
        (the test process itself is not connected to this cluster)."""
        from ray.util.state.api import StateApiClient as Client
        from ray.util.state.common import ListApiOptions, StateResource

        token = (self.root / "auth_token").read_text().strip()
        client = Client(address=self.dashboard, headers={"Authorization": f"Bearer {token}"})
        options = ListApiOptions(filters=filters or [], detail=detail, limit=10_000)
        return client.list(StateResource(resource), options=options, raise_on_missing_output=False)

    def alive_nodes(self) -> dict[str, str]:
        """node name -> node id, of the nodes the GCS holds alive."""
        try:
            nodes = self.state("nodes", [("state", "=", "ALIVE")], detail=True)
        except Exception:  # noqa: BLE001 - the dashboard is still starting
            return {}
        names = {_marker(name): name for name in self.nodes}
        return {names[r]: n.node_id for n in nodes for r in (n.resources_total or {}) if r in names}

    def node_name(self, node_id: str) -> str:
        return next((n.name for n in self.nodes.values() if n.node_id == node_id), node_id[:8])

    # ---- losing and regaining a node -------------------------------------------------------

    def raylet_pid(self, name: str) -> int:
        port = f"--node_manager_port={self.nodes[name].node_manager_port}"
        for pid, (_, command) in _processes().items():
            if "raylet/raylet" in command and port in command and str(self.root) in command:
                return pid
        raise LookupError(f"no raylet for node {name}")

    def kill_node(self, name: str) -> list[int]:
        """kill -9 the node's raylet and every process below it (its workers and agents), at once."""
        raylet = self.raylet_pid(name)
        doomed = _descendants({raylet})
        for pid in doomed:
            _kill(pid)
        return sorted(doomed)

    def restart_node(self, name: str, timeout_s: float = 60) -> None:
        """The node back, as a new Ray node (a new id) with the same ports and name."""
        node = self.nodes[name]
        self._ray_start(node)
        deadline = time.monotonic() + timeout_s
        while name not in self.alive_nodes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {name} did not come back")
            time.sleep(0.5)
        node.node_id = self.alive_nodes()[name]
        self._wait_schedulable()

    # ---- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Every process of this cluster, and nothing else: SIGTERM, then SIGKILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                _kill(pid, sig)
            deadline = time.monotonic() + 5
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
        left = self.processes()
        if left:
            raise RuntimeError(f"Ray processes left running: {sorted(left)}")

    def processes(self) -> set[int]:
        processes = _processes()
        roots = {pid for pid, (_, command) in processes.items() if str(self.root) in command}
        return _descendants(roots, processes) - {os.getpid()}


def _marker(name: str) -> str:
    return "billing_node_" + name.replace("-", "_")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (parent, command)
    return found


def _descendants(roots: set[int], processes: dict[int, tuple[int, str]] | None = None) -> set[int]:
    processes = processes if processes is not None else _processes()
    found = set(roots)
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in processes.items() if parent in found} - found
        found |= below
        grew = bool(below)
    return found


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
