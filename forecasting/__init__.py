"""Reporting: revenue analytics, usage forecasting and churn prediction (issue 6).

Modules: generator (synthetic history), generator_store (writes it), revenue, features,
usage_model / usage_run (forecasts on Ray tasks), projection, churn / churn_run, plots,
model_store, tables (migration 0011), workflows (what the CLI, the demo and Ray jobs run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.settings import Settings


def demo_summary(settings: Settings) -> str:
    """Both models trained on a generated history; MASE, AUC vs oracle and the plot paths."""
    from forecasting.workflows import demo_summary as summary

    return summary(settings)
