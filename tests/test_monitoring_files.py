"""The shipped dashboard and alert rules speak of metrics the service really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from infra import metrics
from notifications import metrics as notification_metrics

MONITORING = Path(__file__).resolve().parents[1] / "docs" / "monitoring"


def exported_names() -> set[str]:
    modules = (metrics, notification_metrics)  # notifications' metrics are made by infra/metrics.py's makers
    return {value.name for module in modules for value in vars(module).values() if isinstance(value, metrics._Lazy)}


def referenced(text: str) -> set[str]:
    # Ray prefixes custom metrics with "ray_"; Prometheus adds _total / _bucket suffixes.
    return {
        re.sub(r"_(total|bucket|sum|count)$", "", name) for name in re.findall(r"ray_(billing_\w+)", text)
    }


def test_the_dashboard_and_the_alerts_use_only_exported_metrics():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    alerts = yaml.safe_load((MONITORING / "billing-alerts.yml").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    expressions += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    names = referenced("\n".join(expressions))
    assert names and names <= exported_names(), names - exported_names()
    assert yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"]
