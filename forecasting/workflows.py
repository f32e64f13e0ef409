"""What the CLI, the demo and a Ray job run: a model trained end to end, its CSV files, plots and
metrics. Importable: `from forecasting.workflows import usage_workflow, churn_workflow`."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import ray
from sqlalchemy import func, select

from forecasting import data, plots
from forecasting.churn_run import ChurnRun, run_churn
from forecasting.features import activity
from forecasting.generator import History, HistorySpec, oracle, simulate
from forecasting.generator_store import fx_source, generate
from forecasting.usage_model import mase, scorable
from forecasting.usage_run import HISTORY_DAYS, UsageRun, run_usage_forecast
from infra.schema import tenants
from infra.settings import Settings
from pricing.meters import METERS

Progress = Callable[[int, int], None]


def default_spec(tenants_count: int = 300, seed: int = 7) -> HistorySpec:
    return HistorySpec(prefix=f"synthetic-s{seed}-n{tenants_count}-", tenants=tenants_count, seed=seed)


def ensure_history(settings: Settings, spec: HistorySpec) -> bool:
    """Write the generated history unless its tenants are there already (it is deterministic by
    seed, so the stored one is the same). True when it was written now."""

    async def count() -> int:
        engine = data.engine(settings)
        try:
            async with engine.connect() as conn:
                query = select(func.count()).where(
                    tenants.c.tenant_id.startswith(spec.prefix, autoescape=True)
                )
                return int((await conn.execute(query)).scalar() or 0)
        finally:
            await engine.dispose()

    if asyncio.run(count()):
        return False
    generate(settings, spec)
    return True


BOUND_SEEN_DAYS = 7  # a disengagement is told from noise after a week of decay (`usage_bound`)


def usage_bound(history: History, origin: int, horizon: int, seen_days: int = BOUND_SEEN_DAYS) -> float:
    """The backtest's MASE of the generator's noise-free median (`History.oracle_usage`) from the
    day index `origin`, over the series the backtest scores: what no usage model beats on average
    on this history. The series' scale is taken over the days a run reads before the origin."""
    bound = history.oracle_usage(origin, horizon, seen_days)
    start = max(origin - (HISTORY_DAYS - horizon), 0)
    scores = []
    for t in range(len(history.tenant_ids)):
        for m in range(bound.shape[2]):
            past, actual = history.daily[t, start:origin, m], history.daily[t, origin : origin + horizon, m]
            if scorable(past, actual):
                scores.append(mase(past, actual, bound[t, :, m]))
    return float(np.mean(scores)) if scores else float("nan")


@dataclass
class UsageOutcome:
    run: UsageRun
    csv: Path
    projections_csv: Path
    plot: Path
    tenant: str
    bound: float | None = None  # on a generated history: `usage_bound` of its backtest

    def metrics(self) -> dict[str, object]:
        bound = {} if self.bound is None else {"bound_mase": self.bound}
        return {
            **self.run.backtest.to_json(),
            **bound,
            "version": self.run.version,
            "tenants": len(self.run.ids),
        }


def usage_workflow(
    settings: Settings,
    out_dir: Path,
    *,
    spec: HistorySpec | None = None,
    prefix: str | None = None,
    origin: date | None = None,
    tenant: str | None = None,
    batch_size: int = 100,
    parallel: bool | None = None,
    progress: Progress | None = None,
) -> UsageOutcome:
    """Forecast the generated history `spec` (written first when missing), or the real tenants
    (optionally those with `prefix`) from `origin`; write the forecasts and projections as CSV and
    the chosen tenant's forecast (default: a typical active one, `representative`) as a PNG."""
    if spec is not None:
        ensure_history(settings, spec)
        prefix, origin = spec.prefix, spec.end
    parallel = ray.is_initialized() if parallel is None else parallel
    run = run_usage_forecast(
        settings, prefix=prefix, origin=origin, batch_size=batch_size, parallel=parallel, progress=progress
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if not run.ids:
        raise ValueError("no tenants to forecast")
    first = run.origin - timedelta(days=PLOT_HISTORY_DAYS)
    recent = _recent_usage(settings, run.ids if tenant is None else [tenant], first)
    chosen = tenant or representative(run, recent)
    shown = recent[0] if tenant is not None else recent[run.ids.index(chosen)]
    path = out_dir / f"usage-forecast-{chosen}.png"
    return UsageOutcome(
        run=run,
        csv=_forecast_csv(run, out_dir / f"usage-forecast-{run.version}.csv"),
        projections_csv=_projections_csv(run, out_dir / f"invoice-projection-{run.version}.csv"),
        plot=plots.forecast_chart(chosen, first, shown, run.origin, run.forecast_of(chosen), path),
        tenant=chosen,
        bound=_bound(spec, run) if spec is not None else None,
    )


def _bound(spec: HistorySpec, run: UsageRun) -> float:
    history = simulate(spec)
    horizon = run.forecasts.shape[3]
    return usage_bound(history, (run.origin - spec.start).days - horizon, horizon)


PLOT_HISTORY_DAYS = 60  # the history shown next to the 30-day forecast


def representative(run: UsageRun, recent: np.ndarray) -> str:
    """The tenant to plot when none is named: a typical active one. Active: used every one of the
    last 14 days, at no less than half its level of the four weeks before (not leaving), and
    forecast to go on; of those, the one whose usage ranks nearest the middle, meter by meter.
    `recent` is the usage (tenants x days x meters, `run.ids` order) of the days before the origin."""
    level = activity(recent)
    last, before = level[:, -14:], level[:, -42:-14]
    going_on = run.forecasts[:, :, 0, :].sum(axis=(1, 2)) > 0
    active = (last > 0).all(axis=1) & (last.mean(axis=1) >= 0.5 * before.mean(axis=1)) & going_on
    candidates = np.flatnonzero(active)
    if not len(candidates):
        candidates = np.flatnonzero(going_on) if going_on.any() else np.arange(len(run.ids))
    totals = recent[candidates].sum(axis=1)  # candidates x meters
    ranks = totals.argsort(axis=0).argsort(axis=0).mean(axis=1)
    middle = (len(candidates) - 1) / 2
    return run.ids[int(candidates[np.argmin(np.abs(ranks - middle))])]


def _forecast_csv(run: UsageRun, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model_version", "tenant_id", "meter", "day", "quantity", "lower", "upper"])
        for t, tenant_id in enumerate(run.ids):
            for m, meter in enumerate(METERS):
                for h in range(run.forecasts.shape[3]):
                    median, lower, upper = run.forecasts[t, m, :, h]
                    day = run.origin + timedelta(days=h)
                    writer.writerow(
                        [
                            run.version,
                            tenant_id,
                            meter.value,
                            day,
                            f"{median:.6f}",
                            f"{lower:.6f}",
                            f"{upper:.6f}",
                        ]
                    )
    return path


def _projections_csv(run: UsageRun, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model_version", "tenant_id", "month", "currency", "subtotal", "lower", "upper"])
        for tenant_id, (currency, median, lower, upper) in sorted(run.projections.items()):
            writer.writerow([run.version, tenant_id, f"{run.origin:%Y-%m}", currency, median, lower, upper])
    return path


def _recent_usage(settings: Settings, ids: list[str], first: date) -> np.ndarray:
    async def read() -> np.ndarray:
        engine = data.engine(settings)
        try:
            async with engine.connect() as conn:
                return await data.daily_usage(conn, ids, first, PLOT_HISTORY_DAYS)
        finally:
            await engine.dispose()

    return asyncio.run(read())


@dataclass
class ChurnOutcome:
    run: ChurnRun
    csv: Path
    calibration_plot: Path
    risk_plot: Path

    def metrics(self) -> dict[str, object]:
        return {**self.run.metrics.to_json(), "version": self.run.version}


def churn_workflow(
    settings: Settings,
    out_dir: Path,
    *,
    spec: HistorySpec | None = None,
    prefix: str | None = None,
    as_of: date | None = None,
    history_days: int = 273,
    progress: Progress | None = None,
) -> ChurnOutcome:
    """Train and test the churn model on the generated history `spec` (with its oracle) or on the
    real tenants; write the scores with their drivers as CSV and the two plots."""
    source = None
    truth = None
    if spec is not None:
        ensure_history(settings, spec)
        prefix, as_of, history_days = spec.prefix, spec.end, spec.days
        truth, source = oracle(simulate(spec)), fx_source(spec)
    run = run_churn(
        settings,
        prefix=prefix,
        as_of=as_of,
        history_days=history_days,
        oracle=truth,
        fx_source=source,
        progress=progress,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    return ChurnOutcome(
        run=run,
        csv=_scores_csv(run, out_dir / f"churn-scores-{run.version}.csv"),
        calibration_plot=plots.calibration_chart(
            run.test_probabilities, run.test.labels, out_dir / f"churn-calibration-{run.version}.png"
        ),
        risk_plot=plots.risk_chart(run.probabilities, out_dir / f"churn-risk-{run.version}.png"),
    )


def _scores_csv(run: ChurnRun, path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["model_version", "tenant_id", "as_of", "probability", "driver_1", "driver_2", "driver_3"]
        )
        order = np.argsort(-run.probabilities)
        for i in order:
            drivers = [f"{name} ({value:+.2f})" for name, value in run.drivers[i]]
            writer.writerow(
                [run.version, run.scored_ids[i], run.as_of, f"{run.probabilities[i]:.4f}", *drivers]
            )
    return path


def demo_summary(settings: Settings, tenants_count: int = 300, seed: int = 7) -> str:
    """For `billing demo`: both models trained on a generated history, their metrics and files.
    Uses Ray tasks when the caller is connected to Ray."""
    spec = default_spec(tenants_count, seed)
    out_dir = Path(settings.data_dir) / "reports"
    usage = usage_workflow(settings, out_dir, spec=spec)
    churn = churn_workflow(settings, out_dir, spec=spec)
    m, c = usage.run.backtest, churn.run.metrics
    ratio = c.auc / c.oracle_auc if c.oracle_auc else float("nan")
    return "\n".join(
        [
            f"forecasting on a generated history ({tenants_count} tenants, {spec.days} days, seed {seed}):",
            (
                f"  usage model {usage.run.version}: MASE {m.mase:.3f} vs seasonal-naive {m.naive_mase:.3f}"
                f" (best possible {usage.bound:.3f}) over {m.series} series,"
                f" 90% bands cover {m.coverage_90:.1%} of held-out days;"
                f" {len(usage.run.ids) / usage.run.seconds:.0f} tenants/s"
            ),
            (
                f"  churn model {churn.run.version}: ROC-AUC {c.auc:.3f}, oracle {c.oracle_auc:.3f}"
                f" ({ratio:.1%}), Brier {c.brier:.4f} vs base rate {c.base_rate_brier:.4f}"
            ),
            f"  forecasts {usage.csv}",
            f"  forecast plot {usage.plot}",
            f"  churn scores {churn.csv}",
            f"  calibration plot {churn.calibration_plot}",
            f"  risk plot {churn.risk_plot}",
        ]
    )
