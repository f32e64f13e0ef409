"""Ingest benchmark: prints figures, asserts nothing.

1. batches of 1,000 events for --batch-seconds: events/s accepted (202) and events/s aggregated
   into PostgreSQL (until every event is stored), with freshness (202 -> visible in GET) probed
   meanwhile, and the CPU-seconds per million events of each process group (bench/cpu.py);
2. single-event POSTs for --single-seconds through Ray Serve, then the same work against the
   same app under plain uvicorn, with the ratio.

The last line, `end to end: N events/s`, is for scripts.

    .venv/bin/python bench/ingest.py [--batch-seconds 60] [--single-seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine
from bench.cpu import CpuMeter, per_million
from bench.servers import bench_settings
from infra.settings import Settings
from serve.auth import mint

if TYPE_CHECKING:
    from serve.stack import Stack

RUN = f"{int(time.time())}"
COUNTER = itertools.count()


class BatchBodies:
    """Batches of `size` events over `tenants` tenants, each event with an id of its own. The body
    is made once, with the batch's number as a placeholder in every event id, and each batch
    fills it in: building 1,000 events per request with orjson was ~2 µs per event of the load
    generator's CPU, taken from the 2 cores the service is measured on. The timestamp is the
    start of the run (within the late window for the run's length)."""

    PLACEHOLDER = b"#BATCH#"

    def __init__(self, size: int, tenants: int) -> None:
        now = datetime.now(UTC).isoformat()
        self.template = orjson.dumps(
            {
                "events": [
                    {
                        "event_id": f"b{RUN}-#BATCH#-{n}",
                        "tenant_id": f"bench-{n % tenants}",
                        "timestamp": now,
                        "usage": {"cpu_seconds": "0.5", "memory_gb_hours": "0.125", "executions": 1},
                    }
                    for n in range(size)
                ]
            }
        )

    def __call__(self) -> bytes:
        return self.template.replace(self.PLACEHOLDER, str(next(COUNTER)).encode())


def single_body(tenant: str = "bench-single") -> bytes:
    return orjson.dumps(
        {
            "event_id": f"s{RUN}-{next(COUNTER)}",
            "tenant_id": tenant,
            "timestamp": datetime.now(UTC).isoformat(),
            "usage": {"executions": 1},
        }
    )


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else float("nan")


async def load(
    client: httpx.AsyncClient, make_body, seconds: float, concurrency: int
) -> tuple[int, list[float]]:
    """POST bodies for `seconds` from `concurrency` workers; returns (accepted events, latencies)."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        while time.perf_counter() < deadline:
            body = make_body()
            started = time.perf_counter()
            response = await client.post("/api/v1/usage", content=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code == 202:
                accepted += response.json()["accepted"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted, latencies


async def freshness(client: httpx.AsyncClient, reader: httpx.AsyncClient, seconds: float) -> list[float]:
    """Post one event, poll GET until it shows; repeat."""
    samples, deadline, tenant = [], time.perf_counter() + seconds, f"fresh-{RUN}"
    seen = Decimal(0)
    while time.perf_counter() < deadline:
        await client.post("/api/v1/usage", content=single_body(tenant))
        posted = time.perf_counter()
        while True:
            rows = (await reader.get(f"/api/v1/usage/{tenant}")).json()["rows"]
            total = sum((Decimal(r["executions"]) for r in rows), Decimal(0))
            if total > seen:
                seen = total
                samples.append(time.perf_counter() - posted)
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)
    return samples


async def stored_events(engine, tenants: int) -> int:
    from sqlalchemy import func, select

    from infra.schema import usage_hourly

    async with engine.connect() as conn:
        total = await conn.scalar(
            select(func.coalesce(func.sum(usage_hourly.c.executions), 0)).where(
                usage_hourly.c.tenant_id.in_([f"bench-{i}" for i in range(tenants)])
            )
        )
    return int(total)


async def batch_phase(
    url: str, kernel: str, viewer: str, settings: Settings, seconds: float, tenants: int
) -> float:
    """Events/s end to end (accepted and stored in PostgreSQL)."""
    from infra.database import create_engine

    engine = create_engine(settings.database_url)
    before = await stored_events(engine, tenants)
    meter = CpuMeter(settings.data_dir, settings.redis_url)
    cpu_before = meter.snapshot()
    headers = {"authorization": f"Bearer {kernel}", "content-type": "application/json"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client,
        httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {viewer}"}, timeout=60) as reader,
    ):
        started = time.perf_counter()
        (accepted, p50, p99), fresh = await asyncio.gather(
            send_batches(url, kernel, BatchBodies(1000, tenants), seconds), freshness(client, reader, seconds)
        )
        sent_for = time.perf_counter() - started
    while (stored := await stored_events(engine, tenants) - before) < accepted:
        if time.perf_counter() - started > seconds * 4 + 60:
            break
        await asyncio.sleep(0.05)
    stored_for = time.perf_counter() - started
    cpu_after = meter.snapshot()
    await engine.dispose()
    print(
        f"batches of 1000 for {sent_for:.1f} s: {accepted:,} events accepted = {accepted / sent_for:,.0f} events/s"
        f" (request p50 {p50}, p99 {p99})"
    )
    print(
        f"aggregated into PostgreSQL: {stored:,} events in {stored_for:.1f} s = {stored / stored_for:,.0f} events/s end to end"
    )
    print(
        f"freshness 202 -> visible in GET: p50 {pct(fresh, 50):.1f} ms, p99 {pct(fresh, 99):.1f} ms ({len(fresh)} probes)"
    )
    print(f"CPU by process group over the batch phase ({stored:,} events stored):")
    for line in per_million(cpu_before, cpu_after, stored):
        print(line)
    return stored / stored_for


BATCH_CONNECTIONS = 6


async def send_batches(url: str, kernel: str, bodies: BatchBodies, seconds: float) -> tuple[int, str, str]:
    """POST batches for `seconds`: (events accepted, request p50, p99). wrk when installed: the
    client shares the 2 cores the service is measured on, and wrk with bench/batch_events.lua
    takes ~0.4 µs of CPU per event where httpx took ~2 (the load generator's group, freshness
    probes and Ray's driver included, 0.8-0.9 µs instead of 1.6-2.4)."""
    if not shutil.which("wrk"):
        return await send_batches_httpx(url, kernel, bodies, seconds)
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        body.write(bodies.template)
        body.flush()
        env = {**os.environ, "BENCH_TOKEN": kernel, "BENCH_BODY": body.name}
        script = str(Path(__file__).with_name("batch_events.lua"))
        wrk = await asyncio.create_subprocess_exec(
            *("wrk", "-t1", f"-c{BATCH_CONNECTIONS}", f"-d{round(seconds)}s", "--timeout", "60s"),
            *("--latency", "-s", script, url),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out = (await wrk.communicate())[0].decode()
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk failed: {out}")
    return int(re.search(r"accepted: (\d+)", out).group(1)), *wrk_latencies(out)


async def send_batches_httpx(
    url: str, kernel: str, bodies: BatchBodies, seconds: float
) -> tuple[int, str, str]:
    headers = {"authorization": f"Bearer {kernel}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=BATCH_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        accepted, latencies = await load(client, bodies, seconds, concurrency=BATCH_CONNECTIONS)
    return accepted, f"{pct(latencies, 50):.1f} ms", f"{pct(latencies, 99):.1f} ms"


def wrk_latencies(out: str) -> tuple[str, str]:
    """p50 and p99 from wrk's `--latency` report, as it writes them (`39.60ms`)."""
    p50, p99 = (re.search(rf"\s{q}%\s+([\d.]+\w+)", out).group(1) for q in (50, 99))
    return p50, p99


def single_phase(label: str, url: str, kernel: str, seconds: float) -> float:
    """wrk when installed (apt-get install wrk): a C client leaves the 2 cores to the server."""
    if not shutil.which("wrk"):
        return asyncio.run(single_phase_httpx(label, url, kernel, seconds))
    env = {
        **os.environ,
        "BENCH_TOKEN": kernel,
        "BENCH_RUN": f"{RUN}{label[:1]}",
        "BENCH_TS": datetime.now(UTC).isoformat(),
    }
    script = str(Path(__file__).with_name("single_event.lua"))
    subprocess.run(
        ["wrk", "-t1", "-c8", "-d1s", "-s", script, url], env=env, capture_output=True, check=False
    )  # warm up
    env["BENCH_RUN"] += "m"
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{int(seconds)}s", "--latency", "-s", script, url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50, p99 = wrk_latencies(out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(
        f"single events via {label} (wrk, 32 connections): {rate:,.0f} req/s, p50 {p50}, p99 {p99}"
        f"{f', {errors.group(1)} non-2xx' if errors else ''}"
    )
    return rate


async def single_phase_httpx(label: str, url: str, kernel: str, seconds: float) -> float:
    headers = {"authorization": f"Bearer {kernel}", "content-type": "application/json"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=30, limits=httpx.Limits(max_connections=64)
    ) as client:
        await load(client, single_body, 1, concurrency=8)  # warm up
        started = time.perf_counter()
        accepted, latencies = await load(client, single_body, seconds, concurrency=32)
        elapsed = time.perf_counter() - started
    rate = len(latencies) / elapsed
    print(
        f"single events via {label}: {rate:,.0f} req/s, p50 {pct(latencies, 50):.1f} ms, "
        f"p99 {pct(latencies, 99):.1f} ms ({accepted:,} accepted)"
    )
    return rate


def load_average() -> str:
    """The machine's load (other users share its cores): uptime's load averages."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def start_plain_uvicorn(settings: Settings, port: int) -> subprocess.Popen:
    code = (
        "import uvicorn, pickle, sys; from serve.app import build_app; "
        "settings = pickle.loads(bytes.fromhex(sys.argv[1])); "
        f"uvicorn.run(build_app(settings), host='127.0.0.1', port={port}, log_level='warning', access_log=False)"
    )
    import pickle

    process = subprocess.Popen(
        [sys.executable, "-c", code, pickle.dumps(settings).hex()], cwd=Path(__file__).resolve().parents[1]
    )
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("plain uvicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-seconds", type=float, default=60)
    parser.add_argument("--single-seconds", type=float, default=15)
    parser.add_argument("--tenants", type=int, default=200)
    args = parser.parse_args()
    from serve.stack import start_stack

    with bench_settings() as requested:
        stack = start_stack(requested, dashboard=False)
        try:
            end_to_end = measure(stack, args)
        finally:
            stack.stop()
    print(f"end to end: {end_to_end:.0f} events/s")  # the last line, for scripts


def measure(stack: Stack, args: argparse.Namespace) -> float:
    """Prints the figures; returns the batches' events/s aggregated end to end."""
    settings = stack.settings
    kernel, viewer = mint(settings.jwt_secret, "kernel"), mint(settings.jwt_secret, "viewer")
    print(f"Ray Serve at {stack.api_url}, {settings.shards} shards, {os.cpu_count()} CPUs")
    print(f"load before: {load_average()}")
    print(machine.describe("before"))
    end_to_end = asyncio.run(
        batch_phase(stack.api_url, kernel, viewer, settings, args.batch_seconds, args.tenants)
    )
    print(f"load after the batch phase: {load_average()}")
    print(machine.describe("after the batch phase"))
    serve_rate = single_phase("Ray Serve", stack.api_url, kernel, args.single_seconds)
    plain = start_plain_uvicorn(settings, settings.http_port + 1)
    try:
        plain_rate = single_phase(
            "plain uvicorn", f"http://127.0.0.1:{settings.http_port + 1}", kernel, args.single_seconds
        )
    finally:
        plain.terminate()
    print(f"single events, Ray Serve / plain uvicorn = {serve_rate / plain_rate:.2f}")
    return end_to_end


if __name__ == "__main__":
    main()
