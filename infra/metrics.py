"""The service's custom metrics, exported on the Ray metrics endpoint (ray.util.metrics).

Each is created on first use inside the process that records it, since a Ray metric belongs to
the worker that made it. Labels stay low-cardinality: shard, route, outcome; never a tenant id.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import Any


class _Lazy:
    def __init__(self, name: str, factory: Callable[[], Any], kind: str) -> None:
        self.name = name  # as exported, before Ray's "ray_" prefix
        self.kind = kind  # counter, gauge or histogram
        self._factory = factory

    @cached_property
    def _metric(self) -> Any:
        return self._factory()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._metric, name)

    def inc(self, value: float = 1, tags: dict[str, str] | None = None) -> None:
        # Ray's Counter refuses 0; "nothing happened" is simply not recorded.
        if value > 0:
            self._metric.inc(value, tags=tags)


def _counter(name: str, description: str, tags: tuple[str, ...] = ()) -> _Lazy:
    def make() -> Any:
        from ray.util.metrics import Counter

        return Counter(name, description=description, tag_keys=tags)

    return _Lazy(name, make, "counter")


def _gauge(name: str, description: str, tags: tuple[str, ...] = ()) -> _Lazy:
    def make() -> Any:
        from ray.util.metrics import Gauge

        return Gauge(name, description=description, tag_keys=tags)

    return _Lazy(name, make, "gauge")


def _histogram(name: str, description: str, boundaries: list[float], tags: tuple[str, ...] = ()) -> _Lazy:
    def make() -> Any:
        from ray.util.metrics import Histogram

        return Histogram(name, description=description, boundaries=boundaries, tag_keys=tags)

    return _Lazy(name, make, "histogram")


events_accepted = _counter("billing_usage_events_accepted", "Usage events appended to the usage log")
events_duplicate = _counter("billing_usage_events_duplicate", "Usage events dropped as already seen")
events_rejected = _counter("billing_usage_events_rejected", "Usage events refused by validation")
ingest_unavailable = _counter(
    "billing_usage_ingest_unavailable", "Ingest requests answered 503", ("dependency",)
)
events_aggregated = _counter(
    "billing_usage_events_aggregated", "Usage events stored in usage_hourly", ("shard",)
)
flush_seconds = _histogram(
    "billing_usage_flush_seconds",
    "Time of one flush transaction",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    ("shard",),
)
flush_failures = _counter("billing_usage_flush_failures", "Flushes that did not commit", ("shard",))
entries_dead_lettered = _counter(
    "billing_usage_entries_dead_lettered", "Usage-log entries set aside as unparseable", ("shard",)
)
stream_length = _gauge(
    "billing_usage_stream_lag_entries", "Usage-log entries not yet stored in PostgreSQL", ("shard",)
)
invoice_run_tenants = _counter(
    "billing_invoice_run_tenants", "Tenants processed by invoice runs", ("trigger", "outcome")
)
invoice_run_progress = _gauge(
    "billing_invoice_run_progress", "Share of the running invoice run's tenants done (0 to 1)", ("trigger",)
)
payment_outcomes = _counter(
    "billing_payment_outcomes",
    "Payments reaching a state (completed, failed, refunded, ...)",
    ("method", "state"),
)
webhook_events = _counter(
    "billing_webhook_events", "Provider webhook deliveries by what became of them", ("provider", "outcome")
)
rate_limited = _counter(
    "billing_rate_limited", "Requests refused with 429 by the per-client rate limits", ("limit",)
)
rate_limit_unavailable = _counter(
    "billing_rate_limit_unavailable", "Requests let through unlimited because Redis did not answer"
)


def endpoint() -> str:
    """The metrics URL of the node this process runs on (Prometheus text format)."""
    import ray

    node = ray._private.worker.global_worker.node  # the export port, as `ray status` shows it
    if node is None:
        raise RuntimeError("not connected to Ray (ray.init first): no metrics endpoint")
    return f"http://{node.node_ip_address}:{node.metrics_export_port}/metrics"


def exported() -> list[_Lazy]:
    return [value for value in globals().values() if isinstance(value, _Lazy)]


def histograms(text: str) -> dict[str, tuple[float, float]]:
    """Per custom histogram in a scrape, (observations, sum of the observed values) over its label
    sets: a flush_seconds histogram's count is a number of flushes, its sum seconds."""
    wanted = {f"ray_{m.name}": m.name for m in exported() if m.kind == "histogram"}
    found: dict[str, list[float]] = {}
    for name, part, value in re.findall(r"^(\w+)_(count|sum)(?:\{.*\})? (\S+)$", text, re.MULTILINE):
        if name in wanted:
            pair = found.setdefault(wanted[name], [0.0, 0.0])
            pair[0 if part == "count" else 1] += float(value)
    return {name: (count, total) for name, (count, total) in found.items()}


def totals(text: str) -> dict[str, float]:
    """Per custom metric in a scrape, the sum over its label sets (a histogram's count)."""
    wanted = {}
    for metric in exported():
        for suffix in ("", "_total", "_count"):
            wanted[f"ray_{metric.name}{suffix}"] = metric.name
    sums: dict[str, float] = {}
    for name, value in re.findall(r"^(\w+)(?:\{.*\})? (\S+)$", text, re.MULTILINE):
        if name in wanted:
            sums[wanted[name]] = sums.get(wanted[name], 0.0) + float(value)
    return sums
