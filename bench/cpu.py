"""CPU-seconds by process group, for the benchmarks (Linux /proc).

The groups are the stack's own processes: the processes this benchmark started (Ray's, which run
the API replicas, shard actors and HAProxy), the embedded PostgreSQL (its postmaster by pid file,
and every backend) and Redis (its own INFO: daemonized, it is nobody's child). Processes of other
users of the machine are not counted, but they share its cores.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import redis

TICK = os.sysconf("SC_CLK_TCK")
API, HAPROXY, SHARDS, TASKS, REDIS, REDIS_CHILDREN, POSTGRES, RAY, CLIENT = (
    "API replicas",
    "HAProxy",
    "shard actors",
    "Ray task workers",
    "Redis",
    "Redis's AOF rewrites",  # its forked children: rewriting the AOF as it grows
    "PostgreSQL",
    "Ray's own",
    "load generator (bench, wrk)",
)
SERVICE = (API, HAPROXY, SHARDS, TASKS, REDIS, REDIS_CHILDREN, POSTGRES, RAY)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU-seconds used) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _descendants(roots: set[int]) -> dict[int, float]:
    """CPU-seconds of every live process under `roots` (roots included)."""
    parents, used = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)], used[int(entry)] = stat
    tree, frontier = set(roots) & set(used), set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    return {pid: used[pid] for pid in tree}


def _group(pid: int, own: int) -> str:
    if pid == own:
        return CLIENT
    command = _cmdline(pid)
    if "ServeReplica" in command:
        return API
    if "haproxy" in command.split(" ", 1)[0]:
        return HAPROXY
    if "UsageShard" in command:
        return SHARDS
    if command.startswith(("ray::IDLE", "ray::invoice_batch")):  # a task worker, idle or at work
        return TASKS
    if command.startswith("wrk"):
        return CLIENT
    if "postgres" in command.split(" ", 1)[0]:
        return POSTGRES
    return RAY


@dataclass
class CpuMeter:
    """Snapshots of CPU-seconds per group; the difference of two is the work done in between."""

    data_dir: Path
    redis_url: str

    def snapshot(self) -> dict[str, float]:
        own = os.getpid()
        roots = {own}
        pid_file = self.data_dir / "postgres" / "postmaster.pid"
        if pid_file.exists():
            roots.add(int(pid_file.read_text().split()[0]))
        totals: defaultdict[str, float] = defaultdict(float)
        for pid, seconds in _descendants(roots).items():
            totals[_group(pid, own)] += seconds
        ended = os.times()  # the benchmark's children that have ended (a wrk run) are gone from /proc
        totals[CLIENT] += ended.children_user + ended.children_system
        info = redis.Redis.from_url(self.redis_url).info("cpu")
        totals[REDIS] += float(info.get("used_cpu_sys", 0)) + float(info.get("used_cpu_user", 0))
        totals[REDIS_CHILDREN] += sum(
            float(info.get(f"used_cpu_{part}_children", 0)) for part in ("sys", "user")
        )
        return dict(totals)


def per_million(before: dict[str, float], after: dict[str, float], events: int) -> list[str]:
    """Lines of CPU-seconds per million events by group, the service's total, and µs per event."""
    used = _used(before, after)
    scale = 1e6 / max(events, 1)
    lines = [f"  {group:<28} {used[group] * scale:8.1f} CPU-s per million events" for group in used]
    service = sum(used[group] for group in SERVICE)
    lines.append(
        f"  {'the service (all but the client)':<28} {service * scale:8.1f} CPU-s per million events"
        f" = {service * scale:.1f} µs per event"
    )
    return lines


def ms_each(before: dict[str, float], after: dict[str, float], count: int, noun: str) -> list[str]:
    """Lines of CPU milliseconds per `noun` by group (groups that used any) and all groups' total."""
    used = _used(before, after)
    scale = 1e3 / max(count, 1)
    lines = [f"  {group:<28} {used[group] * scale:6.2f} ms per {noun}" for group in used if used[group]]
    lines.append(f"  {'all of them':<28} {sum(used.values()) * scale:6.2f} ms per {noun}")
    return lines


def _used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {group: max(0.0, after.get(group, 0.0) - before.get(group, 0.0)) for group in (*SERVICE, CLIENT)}
