"""PNG charts (matplotlib, headless): revenue by tier, a tenant's forecast with its interval, the
churn model's calibration curve and the distribution of risk."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers or Ray workers
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from forecasting.churn import calibration
from forecasting.revenue import RevenueReport
from pricing.meters import METERS


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def revenue_chart(report: RevenueReport, path: Path) -> Path:
    """Revenue per month, stacked by tier, in the reporting currency."""
    figure, axes = plt.subplots(figsize=(9, 4.5))
    bottom = np.zeros(len(report.months))
    tiers = sorted({tier for month in report.by_month_tier.values() for tier in month})
    for tier in tiers:
        values = np.array([float(report.by_month_tier.get(m, {}).get(tier, 0)) for m in report.months])
        axes.bar(report.months, values, bottom=bottom, label=tier)
        bottom += values
    axes.set_title(f"Revenue by month and tier ({report.currency.upper()}); MRR {report.money(report.mrr)}")
    axes.set_ylabel(report.currency.upper())
    axes.legend()
    return _save(figure, path)


def forecast_chart(
    tenant_id: str, first: date, history: np.ndarray, origin: date, forecast: np.ndarray, path: Path
) -> Path:
    """The recent history (days x meters from `first`, up to the day before `origin`) and the
    forecast (meters x 3 x horizon) per meter, on one axis each, with the 90% interval."""
    figure, panels = plt.subplots(len(METERS), 1, figsize=(9, 10), sharex=True)
    past = [first + timedelta(days=i) for i in range(history.shape[0])]
    future = [origin + timedelta(days=i) for i in range(forecast.shape[2])]
    for m, (meter, axes) in enumerate(zip(METERS, panels, strict=True)):
        axes.plot(past, history[:, m], color="0.3", linewidth=1, label="usage")
        axes.plot(future, forecast[m, 0], color="tab:blue", label="forecast (median)")
        axes.fill_between(
            future, forecast[m, 1], forecast[m, 2], color="tab:blue", alpha=0.25, label="90% interval"
        )
        axes.axvline(origin, color="0.6", linestyle=":", linewidth=1)
        axes.set_ylim(bottom=0)
        axes.set_ylabel(meter.value, fontsize=8)
    panels[0].set_title(
        f"Usage forecast for {tenant_id} (last {history.shape[0]} days, next {forecast.shape[2]})"
    )
    panels[0].legend(fontsize=8, loc="lower left", ncol=3)
    figure.autofmt_xdate()
    return _save(figure, path)


def calibration_chart(probabilities: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    observed, predicted = calibration(probabilities, labels)
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="0.6", label="perfectly calibrated")
    axes.plot(predicted, observed, marker="o", label="churn model")
    axes.set_xlabel("predicted probability of leaving within 30 days")
    axes.set_ylabel("share that left")
    axes.set_title("Calibration (held-out cutoffs)")
    axes.legend()
    return _save(figure, path)


def risk_chart(probabilities: np.ndarray, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.hist(probabilities, bins=30, color="tab:red", alpha=0.8)
    axes.set_xlabel("probability of leaving within 30 days")
    axes.set_ylabel("tenants")
    axes.set_title("Churn risk of current tenants")
    return _save(figure, path)
