"""Metrics of webhooks and alerts, on the Ray metrics endpoint like infra/metrics.py's (whose
lazy makers these reuse). Labels stay low-cardinality: outcome, kind; never a tenant or URL.
Outside Ray (the API under plain uvicorn) nothing is recorded."""

from __future__ import annotations

import ray

from infra.metrics import _counter, _gauge, _histogram

deliveries = _counter(
    "billing_webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, retry, failed, cancelled)",
    ("outcome",),
)
delivery_seconds = _histogram(
    "billing_webhook_delivery_seconds",
    "Time of one webhook POST, from connecting to the answer",
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
)
outbox_lag = _gauge(
    "billing_webhook_outbox_lag_seconds",
    "How long the oldest due webhook delivery has waited past its time (0: none waits)",
)
endpoints_disabled = _counter(
    "billing_webhook_endpoints_disabled", "Webhook endpoints disabled after failing for the whole retry window"
)
alert_evaluations = _counter(
    "billing_alert_evaluations", "Alert evaluations by kind and outcome (fired, quiet, error)", ("kind", "outcome")
)


def count(metric: object, value: float = 1, tags: dict[str, str] | None = None) -> None:
    if ray.is_initialized():
        metric.inc(value, tags=tags)  # type: ignore[attr-defined]


def observe(metric: object, value: float, tags: dict[str, str] | None = None) -> None:
    if ray.is_initialized():
        metric.observe(value, tags=tags)  # type: ignore[attr-defined]


def set_gauge(metric: object, value: float) -> None:
    if ray.is_initialized():
        metric.set(value)  # type: ignore[attr-defined]
