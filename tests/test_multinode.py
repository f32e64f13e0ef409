"""The service on a real multi-node Ray cluster, losing a node and its Redis primary (issue 18).

A head and two worker nodes are started with `ray start` on this machine (tests/multinode_cluster.py:
each its own raylet, object store and one CPU, ports chosen free, token authentication), and
`billing up` joins them through RAY_ADDRESS, with the machine's PostgreSQL (a fresh database) and
Redis (a fresh key prefix) as external servers. Ray's state API records where everything ran.

- A worker node (raylet and workers, kill -9) is lost during an ingest of 300,000 events and
  during an invoice run of 1,000 tenants: the shard actors come back on the nodes left, the
  kernel, posting through the mTLS proxy (`billing proxy`) as in production, gets only 202 or 503
  with Retry-After, every (tenant, hour) total equals the ground truth,
  and the run ends with one invoice per tenant, numbers gapless.
- The Redis primary (with two replicas and three Sentinels, processes of this test) is killed with
  kill -9 during ingest, with BILLING_REDIS_MIN_REPLICAS_ACKED=1: after the failover nothing
  acknowledged is lost and nothing counted twice. The cost of waiting for the replica is measured.

Needs DATABASE_URL and REDIS_URL (the machine's servers, as CI runs the suite), redis-server /
redis-sentinel (Debian's redis-sentinel package) and nginx (nginx-light). Smaller runs for a quick look:

    BILLING_MULTINODE_EVENTS=60000 BILLING_MULTINODE_TENANTS=200 pytest -s tests/test_multinode.py
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from actors.usage_log import stream_key
from infra import certificates
from infra.database import create_database, create_engine, drop_database, migrate
from infra.settings import Settings
from serve.auth import mint
from serve.mtls.proxy import ProxyConfig
from serve.mtls.proxy import start as start_proxy
from tests.api_process import start_api
from tests.conftest import SESSION, free_port
from tests.kernel_client import Delivery, KernelClient, outcomes
from tests.metering_support import Truth, stored
from tests.multinode_cluster import LocalCluster
from tests.ports import free_ports
from tests.redis_ha import SENTINEL_MASTER, RedisHA
from tests.usage_load import Load, build_load, tenant_name

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("BILLING_MULTINODE_EVENTS", "300000"))
INVOICE_TENANTS = int(os.environ.get("BILLING_MULTINODE_TENANTS", "1000"))
INGEST_TENANTS, BATCH, SENDERS, SHARDS = 200, 1000, 3, 3
KILL_AT = 0.4  # of the batches delivered
RECOVERY_S = 120.0
MAY_2025 = "2025-05"  # a month long past: lite tenants owe 99.00 each, whatever today's date
# The GCS declares a node dead after 3 missed health checks a second apart (Ray's defaults: 5
# checks 3 s apart, ~15 s): what a node's loss costs is mostly how fast it is noticed.
HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}

pytestmark = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
    reason="the multi-node cluster uses the machine's PostgreSQL and Redis (DATABASE_URL, REDIS_URL)",
)


# ---- the cluster, a database, and the stack joining them -----------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="billing-mn-"))
    haproxy = Path(tempfile.mkdtemp(prefix="hp-", dir="/tmp"))  # its socket's path must be short
    metrics_port, stats_port, fallback_port = free_ports(3)
    env = {
        **HEALTH_CHECKS,
        # Workers import this checkout's code, whatever directory the nodes were started from.
        "PYTHONPATH": str(ROOT),
        # Serve's HAProxy ingress as cluster.yaml runs it, its files and ports this cluster's own.
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy / "metrics.sock"),
        # HAProxy's fallback, Serve's Python proxy, binds 8500 with SO_REUSEPORT by default; the
        # test session's Serve has its own, and sharing the port would split requests between
        # the two apps (the CI run's 401s: the session's app, the session's keys).
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(fallback_port),
        # Each replica listens on a port of its own for HAProxy, from 30000 by default: another
        # Serve on this machine (a test session) would take the same ones.
        **port_range("RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"),
        **port_range("RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT", "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"),
    }
    started = time.monotonic()
    running = LocalCluster.start(root, workers=2, cpus=1, extra_env=env)
    print(f"\nRay cluster of 3 nodes up in {time.monotonic() - started:.1f} s at {running.address}")
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(haproxy, ignore_errors=True)


def port_range(low: str, high: str, size: int = 20) -> dict[str, str]:
    """`size` consecutive ports nobody listens on now, below the ephemeral range."""
    rng = random.Random()
    while True:
        start = rng.randrange(20_000, 30_000 - size)
        if all(_free(port) for port in range(start, start + size)):
            return {low: str(start), high: str(start + size - 1)}


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    base = os.environ["DATABASE_URL"]
    name = f"billing_mn_{SESSION}_{uuid.uuid4().hex[:4]}"
    url = asyncio.run(create_database(base, name))
    migrate(url)
    try:
        yield url
    finally:
        asyncio.run(drop_database(base, name))


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]  # of a process joining the cluster and the stack
    url: str
    process: subprocess.Popen


# The shipped serve_config.yaml with what a cluster adds: one replica per node at most, and a
# logical memory reservation, without which Ray places a replica (asking for no CPU) anywhere.
SERVE_CONFIG = """
proxy_location: HeadOnly
http_options: {{host: 127.0.0.1, port: {port}}}
applications:
  - name: billing
    route_prefix: /
    import_path: serve.stack:build
    deployments:
      - name: BillingAPI
        num_replicas: 2
        max_replicas_per_node: 1
        max_ongoing_requests: 256
        ray_actor_options: {{num_cpus: 0, memory: 134217728}}
        logging_config: {{encoding: JSON}}
"""


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster, database_url: str) -> Iterator[Stack]:
    """`billing up` joining the cluster through RAY_ADDRESS."""
    data_dir = cluster.root / "data"
    port = free_port()
    serve_config = cluster.root / "serve_config.yaml"
    serve_config.write_text(SERVE_CONFIG.format(port=port))
    env = {
        **cluster.env,
        "RAY_ADDRESS": cluster.address,
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ["REDIS_URL"],
        "BILLING_REDIS_PREFIX": f"mn-{SESSION}-{uuid.uuid4().hex[:4]}",
        "BILLING_SHARDS": str(SHARDS),
        "BILLING_FLUSH_INTERVAL_SECONDS": "0.2",
        "BILLING_HTTP_PORT": str(port),
        "BILLING_SERVE_CONFIG": str(serve_config),
        "BILLING_DATA_DIR": str(data_dir),
        "BILLING_AUTO_INVOICE": "0",
        "BILLING_JWT_SECRET": secrets.token_hex(32),
        "BILLING_SERVE_PROXY_LOCATION": "HeadOnly",  # three nodes, one machine, one port
        "BILLING_RUN_LEASE_SECONDS": "60",
    }
    log = cluster.root / "billing-up.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: answers(url) or process.poll() is not None, "billing up", 180)
        assert process.poll() is None, f"billing up exited:\n{log.read_text()[-3000:]}"
        yield Stack(Settings.from_env().with_(**_settings_of(env)), env, url, process)
    finally:
        process.kill()
        process.wait()
        forget(os.environ["REDIS_URL"], env["BILLING_REDIS_PREFIX"])


def forget(redis_url: str, prefix: str) -> None:
    """This deployment's keys gone from the shared Redis (a run leaves ~300,000 dedup keys, and
    the resharding test's SCAN walks every key there is)."""
    with redis.Redis.from_url(redis_url) as client:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
            batch.append(key)
            if len(batch) == 10_000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)


def _settings_of(env: dict[str, str]) -> dict[str, object]:
    return {
        "database_url": env["DATABASE_URL"],
        "redis_url": env["REDIS_URL"],
        "redis_prefix": env["BILLING_REDIS_PREFIX"],
        "shards": SHARDS,
        "jwt_secret": env["BILLING_JWT_SECRET"],
        "data_dir": Path(env["BILLING_DATA_DIR"]),
        "ray_address": env["RAY_ADDRESS"],
    }


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def until(condition: Callable[[], object], what: str, timeout_s: float = RECOVERY_S) -> float:
    """Waits for the condition; the moment it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic()


# ---- where things run ------------------------------------------------------------------------


def placement(cluster: LocalCluster, class_name: str) -> dict[str, list[str]]:
    """node name -> the names of the live actors of that class there."""
    actors = cluster.state("actors", [("state", "=", "ALIVE")], detail=True)
    where: dict[str, list[str]] = {}
    for actor in actors:
        if class_name in actor.class_name:
            where.setdefault(cluster.node_name(actor.node_id), []).append(actor.name or actor.actor_id[:8])
    return where


def task_nodes(cluster: LocalCluster, function: str) -> dict[str, Counter]:
    """node name -> how many attempts of the task ended in each state there."""
    tasks = cluster.state("tasks", [("func_or_class_name", "=", function)], detail=True)
    where: dict[str, Counter] = {}
    for task in tasks:
        if task.node_id:
            where.setdefault(cluster.node_name(task.node_id), Counter())[task.state] += 1
    return where


def print_placement(title: str, where: dict) -> None:
    print(f"{title}:")
    for node in sorted(where):
        print(f"  {node:<9} {where[node]}")


# ---- usage: settled, stored, compared ------------------------------------------------------------


def settled(settings: Settings, client: redis.Redis) -> bool:
    """Every shard has stored every entry its stream ever received (read from PostgreSQL and
    Redis: this process is not connected to the cluster)."""
    offsets = dict(
        sql(settings.database_url, "SELECT stream, last_ms || '-' || last_seq FROM usage_stream_offsets")
    )
    for shard in range(settings.shards):
        stream = stream_key(settings.redis_prefix, shard)
        try:
            last = client.xinfo_stream(stream)["last-generated-id"].decode()
        except redis.ResponseError:
            continue  # no entry ever
        if offsets.get(stream) != last:
            return False
    return True


def sql(database_url: str, query: str, **params: object) -> list:
    async def run() -> list:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(query), params)
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def miscounted(truth: Truth, found: Truth) -> tuple[int, int]:
    """(events lost, events counted twice); each event counts one execution."""
    lost = double = 0
    for cell in truth.keys() | found.keys():
        difference = int(found.get(cell, [0] * 5)[4]) - int(truth.get(cell, [0] * 5)[4])
        lost, double = lost + max(0, -difference), double + max(0, difference)
    return lost, double


def assert_exact(truth: Truth, found: Truth) -> None:
    wrong = sorted(cell for cell in truth.keys() | found.keys() if found.get(cell) != truth.get(cell))
    assert not wrong, (
        f"{len(wrong)} totals differ, e.g. {wrong[0]}: {found.get(wrong[0])} != {truth.get(wrong[0])}"
    )


def in_flight_losses(deliveries: list[Delivery]) -> list:
    """Attempts that got neither a 202 nor a 503: see assert_only_202_and_503."""
    return [a for d in deliveries for a in d.attempts if a.outcome not in (202, 503)]


def assert_only_202_and_503(deliveries: list[Delivery]) -> Counter:
    """Every answer a 202 or a 503 with Retry-After: no closed connection, no 500. A request in
    flight on an API replica whose node is killed under it gets neither from Serve's HAProxy
    (the connection closed with no answer, or Ray's 500): the mTLS proxy in front of ingest
    sends that batch once more, or answers 503 (serve/mtls/nginx.conf)."""
    seen = outcomes(deliveries)
    assert set(seen) <= {202, 503}, f"the kernel got {dict(seen)}"
    assert not in_flight_losses(deliveries)
    assert all(a.retry_after for d in deliveries for a in d.attempts if a.outcome == 503)
    assert all(d.accepted + d.duplicates == BATCH for d in deliveries)
    return seen


@dataclass
class FaultRow:
    fault: str
    posted: int
    accepted: int
    lost: int
    double: int
    refused: int
    dropped: int  # answers neither 202 nor 503 (a closed connection, a 500)
    recovery: str

    @staticmethod
    def header() -> str:
        return (
            f"{'fault':<28} | {'posted':>8} | {'accepted':>8} | {'lost':>4} | {'double-counted':>14} | "
            f"{'503s':>5} | {'lost in flight':>14} | time to recover"
        )

    def line(self) -> str:
        return (
            f"{self.fault:<28} | {self.posted:8,} | {self.accepted:8,} | {self.lost:4} | {self.double:14} | "
            f"{self.refused:5} | {self.dropped:14} | {self.recovery}"
        )


def publish(title: str, lines: list[str]) -> None:
    text_ = "\n".join([title, *lines])
    print("\n" + text_)
    if path := os.environ.get("BILLING_FAULT_REPORT"):
        with open(path, "a") as out:
            out.write(text_ + "\n\n")


def send(kernel: KernelClient, load: Load, during: Callable[[Callable[[], int]], None] | None = None):
    """The load from SENDERS threads; `during` runs meanwhile, given the count delivered so far."""
    started = time.monotonic()
    sending = kernel.start(load.bodies, SENDERS)
    try:
        if during is not None:
            during(lambda: sending.delivered)
        deliveries = sending.wait(timeout_s=600)
    finally:
        sending.cancel()
    return deliveries, time.monotonic() - started


# ---- 1. a worker node lost during ingest --------------------------------------------------------


@pytest.fixture
def kernel_proxy(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    """The mTLS proxy in front of the cluster's API, and what a kernel trusts and presents to it."""
    certs = tmp_path / "certs"
    ca = certificates.create_ca()
    certificates.write(ca, certs, certificates.CA)
    certificates.write(certificates.issue_server(ca), certs, certificates.SERVER)
    kernel_cert, kernel_key = certificates.write(certificates.issue_client(ca, "enis-kernel"), certs, "kernel")
    listen = f"127.0.0.1:{free_port()}"
    running = start_proxy(ProxyConfig(certs, listen, stack.url.removeprefix("http://")), tmp_path / "proxy")
    trust = ssl.create_default_context(cafile=str(certs / f"{certificates.CA}.pem"))
    trust.load_cert_chain(str(kernel_cert), str(kernel_key))
    try:
        yield f"https://localhost:{listen.split(':')[1]}", trust  # the server certificate names localhost
    finally:
        running.stop()


def test_usage_is_counted_once_when_a_worker_node_is_lost_during_ingest(cluster, stack, kernel_proxy):
    try:
        until(lambda: len(placement(cluster, "BillingAPI")) >= 2, "API replicas on two nodes", 120)
    finally:
        print_placement("every actor", placement(cluster, ""))
    shards = placement(cluster, "UsageShard")
    replicas = placement(cluster, "BillingAPI")
    print_placement("shard actors (SPREAD)", shards)
    print_placement("API replicas", replicas)
    assert len(shards) >= 2, f"the shard actors are not spread: {shards}"
    assert len(replicas) >= 2, f"the API replicas are on one node: {replicas}"
    # The worker node holding the most of the service: an API replica and a shard if it can.
    victim = max(
        (n for n in cluster.nodes if n != "head"),
        key=lambda n: (bool(shards.get(n)), len(replicas.get(n, [])), len(shards.get(n, []))),
    )
    assert shards.get(victim), f"no shard actor on a worker node: {shards}"

    load = build_load(EVENTS, INGEST_TENANTS, phases=1, hours_per_phase=2, batch_size=BATCH)
    # The kernel posts through the mTLS proxy (`billing proxy`), as in production.
    proxy_url, trust = kernel_proxy
    kernel = KernelClient(proxy_url, mint(stack.settings.jwt_secret, "kernel"), timeout_s=60, verify=trust)
    moments: dict[str, float] = {}

    def lose_node(delivered: Callable[[], int]) -> None:
        until(lambda: delivered() >= KILL_AT * len(load.bodies), "batches before the kill", 180)
        moments["killed"] = time.monotonic()
        killed = cluster.kill_node(victim)
        print(f"kill -9 {victim}: raylet and {len(killed) - 1} processes below it")
        moments["dead"] = until(lambda: victim not in cluster.alive_nodes(), "the GCS to see the node dead")
        moments["shards"] = until(
            lambda: (
                sum(map(len, placement(cluster, "UsageShard").values())) == SHARDS
                and victim not in placement(cluster, "UsageShard")
            ),
            "the shard actors restarted on the nodes left",
        )
        moments["sent_by_then"] = delivered()

    deliveries, took = send(kernel, load, lose_node)
    client = redis.Redis.from_url(stack.settings.redis_url)
    moments["settled"] = until(lambda: settled(stack.settings, client), "the shards to store every entry")
    found = stored(stack.settings, [tenant_name(t) for t in range(INGEST_TENANTS)])
    seen = outcomes(deliveries)
    after_kill = [d for d in deliveries if d.attempts[-1].sent >= moments["killed"]]
    first_202 = min((d.accepted_at for d in after_kill), default=float("nan"))
    lost, double = miscounted(load.truth, found)
    killed_at = moments["killed"]
    recovery = (
        f"node dead {moments['dead'] - killed_at:.1f} s, shards back {moments['shards'] - killed_at:.1f} s, "
        f"first 202 {first_202 - killed_at:.1f} s, all stored {moments['settled'] - killed_at:.1f} s"
    )
    row = FaultRow(
        f"worker node lost ({victim})",
        EVENTS,
        sum(d.accepted for d in deliveries),
        lost,
        double,
        seen.get(503, 0),
        len(in_flight_losses(deliveries)),
        recovery,
    )
    print_placement("shard actors after the loss", placement(cluster, "UsageShard"))
    print_placement("API replicas after the loss", placement(cluster, "BillingAPI"))
    publish(
        f"node loss during ingest: {EVENTS:,} events in {took:.1f} s ({EVENTS / took:,.0f}/s); answers {dict(seen)}; "
        f"{sum(d.duplicates for d in deliveries):,} events answered as duplicates of an earlier attempt; "
        f"load {os.getloadavg()[0]:.2f}",
        [FaultRow.header(), row.line()],
    )
    assert_only_202_and_503(deliveries)
    assert (lost, double) == (0, 0)
    assert_exact(load.truth, found)
    # Accepted means known: a sample sent again counts nothing.
    with kernel.client() as http:
        again = [
            kernel.deliver(http, i, load.bodies[i]) for i in (0, len(load.bodies) // 2, len(load.bodies) - 1)
        ]
    assert all(a.accepted == 0 and a.duplicates == BATCH for a in again)
    make_whole(cluster)


# ---- 2. a worker node lost during an invoice run -------------------------------------------------


def test_an_invoice_run_of_a_thousand_tenants_survives_the_loss_of_a_worker_node(cluster, stack):
    make_whole(cluster)
    prefix = f"mn-{uuid.uuid4().hex[:6]}"
    tenants = [f"{prefix}-{n:04d}" for n in range(INVOICE_TENANTS)]
    register(stack, tenants)
    forecast = run_forecast(stack)
    assert forecast.returncode == 0, forecast.stderr[-3000:]

    run = subprocess.Popen(
        [
            sys.executable,
            "-c",
            INVOICE_RUN,
            pickle.dumps((stack.settings.with_(run_lease_s=60.0), tenants)).hex(),
        ],
        cwd=ROOT,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until(lambda: run_progress(stack) >= 0.2 or run.poll() is not None, "a fifth of the run", 300)
        assert run.poll() is None, f"the run ended before the kill: {run.communicate()}"
        running = task_nodes(cluster, "invoice_batch")
        busy = [n for n in cluster.nodes if n != "head" and running.get(n, Counter())["RUNNING"]]
        victim = busy[0] if busy else "worker-2"
        killed_at = time.monotonic()
        done_before = run_progress(stack)
        cluster.kill_node(victim)
        dead = until(lambda: victim not in cluster.alive_nodes(), "the GCS to see the node dead") - killed_at
        out, err = run.communicate(timeout=600)
        finished = time.monotonic() - killed_at
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, f"the run failed:\n{out}\n{err[-3000:]}"
    [summary] = [json.loads(line.removeprefix(SUMMARY)) for line in out.splitlines() if line.startswith(SUMMARY)]
    where = task_nodes(cluster, "invoice_batch")
    forecasts = task_nodes(cluster, "forecast_batch")
    print_placement("invoice_batch task attempts by node and state", {n: dict(c) for n, c in where.items()})
    print_placement(
        "forecast_batch task attempts by node and state", {n: dict(c) for n, c in forecasts.items()}
    )

    invoices = sql(
        stack.settings.database_url,
        "SELECT tenant_id, number, status, total FROM invoices WHERE tenant_id LIKE :p",
        p=f"{prefix}-%",
    )
    per_tenant = Counter(row[0] for row in invoices)
    series = {row[1].rsplit("-", 1)[0] for row in invoices if row[1]}  # issuer-year
    assert len(series) == 1, f"the run's invoices are numbered in several series: {series}"
    [prefix_of_numbers] = series
    # Gapless over the whole series, whoever else took numbers from it (the forecast's history).
    every = sorted(
        int(n.rsplit("-", 1)[1])
        for (n,) in sql(
            stack.settings.database_url,
            "SELECT number FROM invoices WHERE number LIKE :series",
            series=f"{prefix_of_numbers}-%",
        )
    )
    publish(
        f"node loss during an invoice run of {INVOICE_TENANTS:,} tenants (killed {victim} at "
        f"{done_before:.0%}); load {os.getloadavg()[0]:.2f}",
        [
            (
                f"node dead {dead:.1f} s after the kill; run finished {finished:.1f} s after the kill; "
                f"outcomes {summary['outcomes']}; totals {summary['totals']}"
            ),
            (
                f"invoices {len(invoices):,} for {len(per_tenant):,} tenants; series {prefix_of_numbers}: "
                f"numbers {every[0]}..{every[-1]} ({len(every):,} numbers, {len(set(every)):,} distinct)"
            ),
        ],
    )
    assert summary["outcomes"] == {"created": INVOICE_TENANTS}, summary
    assert len(per_tenant) == INVOICE_TENANTS and set(per_tenant.values()) == {1}
    assert all(row[2] == "finalized" and str(row[3]) == "99.00" for row in invoices)
    assert every == list(range(1, len(every) + 1)), "invoice numbers have a gap or a repeat"
    assert {"head", "worker-1", "worker-2"} <= set(where), f"invoice tasks did not run on every node: {where}"
    assert {"head", "worker-1", "worker-2"} <= set(forecasts), (
        f"forecast tasks not on every node: {forecasts}"
    )
    make_whole(cluster)


def make_whole(cluster: LocalCluster) -> None:
    """Every node of the cluster running again (a lost one as a new Ray node)."""
    alive = cluster.alive_nodes()
    for name in cluster.nodes:
        if name not in alive:
            cluster.restart_node(name)


# How INVOICE_RUN's summary line begins: Ray's driver writes to the same stdout, and may tell of
# the dead node after the run has printed its summary.
SUMMARY = "invoice run summary: "
INVOICE_RUN = """
import json, pickle, sys
from invoicing.run import run_period
from pricing.periods import Period
from serve.stack import start_ray
settings, tenants = pickle.loads(bytes.fromhex(sys.argv[1]))
start_ray(settings, dashboard=False)
summary = run_period(settings, Period.calendar_month(2025, 5), batch_size=20, pdfs=False, tenant_ids=tenants)
print("invoice run summary: " + json.dumps({"outcomes": dict(summary.outcomes), "totals": {k: str(v) for k, v in summary.totals.items()},
                  "failures": summary.failures[:5]}))
"""


def register(stack: Stack, tenants: list[str]) -> None:
    """Lite US tenants (99.00 a month, no VAT), through the API, from a few threads."""
    token = mint(stack.settings.jwt_secret, "billing-admin")
    failures: list[str] = []

    def create(chunk: list[str]) -> None:
        with httpx.Client(
            base_url=stack.url, headers={"authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            for tenant in chunk:
                body = {
                    "tenant_id": tenant,
                    "name": tenant,
                    "tier": "lite",
                    "currency": "usd",
                    "country": "US",
                }
                response = api.post("/api/v1/tenants", json=body)
                if response.status_code != 201:
                    failures.append(f"{tenant}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=create, args=(tenants[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]


def run_forecast(stack: Stack) -> subprocess.CompletedProcess:
    """A usage forecast on generated history, as Ray tasks of a few tenants each."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "forecast",
            "usage",
            "--json",
            "--tenants",
            "60",
            "--batch-size",
            "10",
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_progress(stack: Stack) -> float:
    rows = sql(
        stack.settings.database_url,
        "SELECT tenants_done, tenants_total FROM invoice_runs ORDER BY created_at DESC LIMIT 1",
    )
    return rows[0][0] / rows[0][1] if rows and rows[0][1] else 0.0


# ---- 3. the Redis primary lost during ingest, Sentinel failing over -----------------------------

THROUGHPUT_EVENTS = max(EVENTS // 5, 10 * BATCH)  # each of the two runs that price WAIT


@pytest.fixture
def redis_ha(cluster: LocalCluster) -> Iterator[RedisHA]:
    if not (shutil.which("redis-server") and shutil.which("redis-sentinel")):
        pytest.skip("redis-server and redis-sentinel are needed (apt-get install redis-sentinel)")
    ha = RedisHA.start(cluster.root / f"redis-{uuid.uuid4().hex[:4]}")
    try:
        yield ha
    finally:
        ha.stop()


def renamed(load: Load, prefix: str) -> Load:
    """The same load for other tenants (its own event ids, then, since ids are per tenant)."""
    bodies = [body.replace(b'"tenant_id":"ft-', f'"tenant_id":"{prefix}'.encode()) for body in load.bodies]
    truth = {(prefix + tenant[3:], hour): values for (tenant, hour), values in load.truth.items()}
    return Load(bodies, load.batch_size, truth, load.phase_hours)


def test_nothing_acknowledged_is_lost_when_the_redis_primary_is_killed(cluster, stack, redis_ha, tmp_path):
    sentinels = tuple(("127.0.0.1", port) for port in redis_ha.sentinels)
    base = stack.settings.with_(
        redis_url=f"redis://127.0.0.1:{redis_ha.primary}/0",  # tools; the service asks the Sentinels
        redis_sentinels=sentinels,
        redis_sentinel_master=SENTINEL_MASTER,
        redis_prefix=f"mns-{uuid.uuid4().hex[:6]}",
        ray_address=cluster.address,
        flush_interval_s=0.2,
        auto_invoice=False,
    )
    started = subprocess.run(
        [sys.executable, "-c", START_SHARDS, pickle.dumps(base).hex()],
        cwd=ROOT,
        env={**cluster.env, "RAY_ADDRESS": cluster.address},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert started.returncode == 0, started.stderr[-3000:]
    waiting = base.with_(http_port=free_port(), redis_min_replicas_acked=1, redis_wait_timeout_ms=1000)
    plain = base.with_(http_port=free_port(), redis_min_replicas_acked=0)
    apis = [start_api(waiting, tmp_path / "api-wait.log"), start_api(plain, tmp_path / "api-plain.log")]
    try:
        one = build_load(
            THROUGHPUT_EVENTS, INGEST_TENANTS, phases=1, hours_per_phase=2, batch_size=BATCH, seed=7
        )
        loads = {"no WAIT": renamed(one, "fp-"), "WAIT 1": renamed(one, "fw-")}
        rates = {}
        for name, settings in (("no WAIT", plain), ("WAIT 1", waiting)):
            kernel = KernelClient(f"http://127.0.0.1:{settings.http_port}", mint(base.jwt_secret, "kernel"))
            deliveries, took = send(kernel, loads[name])
            assert outcomes(deliveries) == Counter({202: len(loads[name].bodies)}), outcomes(deliveries)
            rates[name] = THROUGHPUT_EVENTS / took

        failover_events = max(EVENTS // 2, 10 * BATCH)
        # Tenants of their own: the database also holds the node-loss test's "ft-" tenants.
        load = renamed(
            build_load(
                failover_events, INGEST_TENANTS, phases=1, hours_per_phase=2, batch_size=BATCH, seed=11
            ),
            "fs-",
        )
        kernel = KernelClient(f"http://127.0.0.1:{waiting.http_port}", mint(base.jwt_secret, "kernel"))
        old = redis_ha.master_port()
        moments: dict[str, float] = {}

        def kill_primary(delivered: Callable[[], int]) -> None:
            until(lambda: delivered() >= KILL_AT * len(load.bodies), "batches before the kill", 180)
            moments["killed"] = time.monotonic()
            redis_ha.kill(old)
            moments["failed over"] = until(lambda: redis_ha.master_port() != old, "Sentinel's failover")

        deliveries, took = send(kernel, load, kill_primary)
        new = redis_ha.master_port()
        client = redis.Redis(port=new)
        moments["settled"] = until(lambda: settled(base, client), "the shards to store every entry")
        tenants = [prefix + str(t) for prefix in ("fs-", "fp-", "fw-") for t in range(INGEST_TENANTS)]
        found = stored(base, tenants)
        truth = {**load.truth, **loads["no WAIT"].truth, **loads["WAIT 1"].truth}
        waits = int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        with kernel.client() as http:
            again = [
                kernel.deliver(http, i, load.bodies[i])
                for i in (0, len(load.bodies) // 2, len(load.bodies) - 1)
            ]
    finally:
        for api in apis:
            api.terminate()
            api.wait(timeout=30)
    seen = outcomes(deliveries)
    after_kill = [d for d in deliveries if d.attempts[-1].sent >= moments["killed"]]
    first_202 = min((d.accepted_at for d in after_kill), default=float("nan"))
    lost, double = miscounted(load.truth, {k: v for k, v in found.items() if k[0].startswith("fs-")})
    killed_at = moments["killed"]
    row = FaultRow(
        "Redis primary killed",
        failover_events,
        sum(d.accepted for d in deliveries),
        lost,
        double,
        seen.get(503, 0),
        len(in_flight_losses(deliveries)),
        f"failover {moments['failed over'] - killed_at:.1f} s, first 202 {first_202 - killed_at:.1f} s, "
        f"all stored {moments['settled'] - killed_at:.1f} s",
    )
    cost = 1 - rates["WAIT 1"] / rates["no WAIT"]
    publish(
        f"Redis failover during ingest (primary :{old} -> :{new}, BILLING_REDIS_MIN_REPLICAS_ACKED=1): "
        f"{failover_events:,} events in {took:.1f} s; answers {dict(seen)}; "
        f"{sum(d.duplicates for d in deliveries):,} duplicates of an earlier attempt; load {os.getloadavg()[0]:.2f}",
        [
            FaultRow.header(),
            row.line(),
            (
                f"throughput, {THROUGHPUT_EVENTS:,} events through one uvicorn API process each: "
                f"no WAIT {rates['no WAIT']:,.0f}/s, WAIT 1 replica {rates['WAIT 1']:,.0f}/s ({cost:.0%} less); "
                f"WAIT calls on the new primary since the failover: {waits:,}"
            ),
        ],
    )
    assert_only_202_and_503(deliveries)
    assert (lost, double) == (0, 0)
    assert_exact(truth, found)
    assert waits > 0, "the appends after the failover did not wait for a replica"
    assert all(a.accepted == 0 and a.duplicates == BATCH for a in again)


START_SHARDS = """
import pickle, sys
from serve.stack import start_ray, start_shards
settings = pickle.loads(bytes.fromhex(sys.argv[1]))
start_ray(settings, dashboard=False)
start_shards(settings)
"""
