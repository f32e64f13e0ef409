"""The custom ingest metrics reach the Ray metrics endpoint (Prometheus text format)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import httpx

from infra import metrics
from tests.conftest import auth
from tests.metering_support import wait_settled


def scrape() -> str:
    return httpx.get(metrics.endpoint(), timeout=10).text


def test_ingest_metrics_are_exported(api, tokens, stack):
    event = {
        "tenant_id": f"metrics-{uuid.uuid4().hex[:6]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"executions": 1},
        "event_id": uuid.uuid4().hex,
    }
    api.post("/api/v1/usage", json=event, headers=auth(tokens["kernel"]))
    api.post("/api/v1/usage", json=event, headers=auth(tokens["kernel"]))
    api.post("/api/v1/usage", json={**event, "usage": {"executions": -1}}, headers=auth(tokens["kernel"]))
    wait_settled(stack)
    wanted = [
        "billing_usage_events_accepted",
        "billing_usage_events_duplicate",
        "billing_usage_events_rejected",
        "billing_usage_events_aggregated",
        "billing_usage_flush_seconds",
        "billing_usage_stream_lag_entries",
    ]
    deadline = time.monotonic() + 30  # metrics are pushed to the agent every few seconds
    while missing := [name for name in wanted if name not in (text := scrape())]:
        assert time.monotonic() < deadline, f"not exported: {missing}"
        time.sleep(1)
    assert metrics.totals(text)["billing_usage_events_duplicate"] >= 1
    flushes, seconds = metrics.histograms(text)["billing_usage_flush_seconds"]  # a count and a time
    assert flushes >= 1 and 0 < seconds / flushes < 30, (flushes, seconds)
    aggregated = re.findall(r"^ray_billing_usage_events_aggregated_total\{(.*)\} (\S+)$", text, re.MULTILINE)
    assert any('shard="0"' in labels or 'shard="1"' in labels for labels, _ in aggregated), aggregated
    assert sum(float(value) for _, value in aggregated) >= 1
