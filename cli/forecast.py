"""`billing forecast usage|churn`: train the usage-forecast or churn model, write CSV and PNG
files, print the metrics (`--json`: one JSON object, design.md §2).

On a generated history unless told otherwise (`--prefix` or `--all-tenants` use the stored
tenants). Also a Ray job: `ray job submit --working-dir . -- python -m cli.main forecast usage`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from forecasting.generator import HistorySpec
    from infra.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=("usage", "churn"), help="which model to train")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prefix", help="the stored tenants whose id starts with PREFIX")
    source.add_argument("--all-tenants", action="store_true", help="every stored tenant")
    parser.add_argument("--tenants", type=int, default=300, help="generated tenants (default 300)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated history")
    parser.add_argument(
        "--as-of", type=date.fromisoformat, help="first day forecast / scored (stored tenants)"
    )
    parser.add_argument("--tenant", help="the tenant whose forecast is plotted (default: the busiest)")
    parser.add_argument("--batch-size", type=int, default=100, help="tenants per Ray task")
    parser.add_argument("--sequential", action="store_true", help="one process, no Ray tasks")
    parser.add_argument("--out", type=Path, help="where CSV and PNG files go (default DATA_DIR/reports)")


def run(args: argparse.Namespace) -> int:
    from infra.database import migrate
    from infra.embedded import resolve
    from infra.settings import Settings

    settings = resolve(Settings.from_env())
    migrate(settings.resolved_database_url())
    out = args.out or Path(settings.data_dir) / "reports"
    stored = bool(args.prefix or args.all_tenants)
    from forecasting.workflows import default_spec

    spec = None if stored else default_spec(args.tenants, args.seed)
    if args.model == "usage":
        return _usage(settings, args, spec, out)
    return _churn(settings, args, spec, out)


def _progress(stream: TextIO, unit: str = "tenants") -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        width = 40
        filled = width * done // max(total, 1)
        print(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}",
            end="",
            file=stream,
            flush=True,
        )
        if done >= total:
            print(file=stream)

    return show


def _usage(settings: Settings, args: argparse.Namespace, spec: HistorySpec | None, out: Path) -> int:
    from forecasting.workflows import usage_workflow

    if not args.sequential:
        from serve.stack import start_ray

        start_ray(settings, dashboard=False)
    stream = sys.stderr if args.json else sys.stdout
    outcome = usage_workflow(
        settings,
        out,
        spec=spec,
        prefix=args.prefix,
        origin=args.as_of,
        tenant=args.tenant,
        batch_size=args.batch_size,
        parallel=not args.sequential,
        progress=_progress(stream),
    )
    metrics = outcome.metrics()
    if args.json:
        print(json.dumps(metrics))
        return 0
    run = outcome.run
    print(f"model {run.version}: {len(run.ids)} tenants in {run.seconds:.1f} s from {run.origin}")
    print(f"backtest (last 30 days held out, fitted on the days before; {metrics['series']} series):")
    print(
        f"  MASE {metrics['mase']:.3f}   seasonal-naive MASE {metrics['naive_mase']:.3f}   ratio {metrics['relative']:.3f}"
    )
    print(f"  90% bands cover {metrics['coverage_90']:.1%} of the held-out days")
    if outcome.bound is not None:
        print(
            f"  best possible on this generated history {outcome.bound:.3f} (its noise-free level,"
            " a disengagement known after a week)"
        )
    print(f"forecasts   {outcome.csv}")
    print(f"projections {outcome.projections_csv}")
    print(f"plot        {outcome.plot}  ({outcome.tenant})")
    return 0


def _churn(settings: Settings, args: argparse.Namespace, spec: HistorySpec | None, out: Path) -> int:
    from forecasting.workflows import churn_workflow

    stream = sys.stderr if args.json else sys.stdout
    outcome = churn_workflow(
        settings, out, spec=spec, prefix=args.prefix, as_of=args.as_of, progress=_progress(stream, "steps")
    )
    metrics = outcome.metrics()
    if args.json:
        print(json.dumps(metrics))
        return 0
    oracle = metrics["oracle_auc"]
    print(f"model {outcome.run.version}: held out {metrics['tenants']} snapshots, {metrics['churners']} left")
    print(
        f"  ROC-AUC {metrics['auc']:.3f}"
        + (f"   oracle AUC {oracle:.3f}   ratio {metrics['auc_vs_oracle']:.3f}" if oracle else "")
    )
    print(f"  Brier {metrics['brier']:.4f}   base-rate Brier {metrics['base_rate_brier']:.4f}")
    print(f"scores      {outcome.csv}")
    print(f"calibration {outcome.calibration_plot}")
    print(f"risk        {outcome.risk_plot}")
    return 0
