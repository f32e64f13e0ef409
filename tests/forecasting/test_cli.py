"""`billing forecast usage|churn --json` and `billing report revenue`, run in this process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from forecasting.generator_store import fx_source
from tests.forecasting.conftest import PREFIX, SPEC


@pytest.fixture
def env(private_settings, history, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", private_settings.database_url)
    monkeypatch.setenv("REDIS_URL", private_settings.redis_url)  # the session's, not a new embedded one
    monkeypatch.setenv("BILLING_DATA_DIR", str(tmp_path))
    return tmp_path


def test_forecast_churn_on_a_generated_history_prints_auc_oracle_and_brier(env, capsys):
    assert main(["forecast", "churn", "--json", "--tenants", "200", "--seed", "3"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"auc", "oracle_auc", "brier"} <= set(metrics) and 0.5 < metrics["auc"] <= 1
    assert len(list((env / "reports").glob("churn-*.png"))) == 2


def test_forecast_usage_on_stored_tenants_prints_mase_and_writes_files(env, capsys):
    argv = [
        "forecast",
        "usage",
        "--json",
        "--prefix",
        PREFIX,
        "--as-of",
        SPEC.end.isoformat(),
        "--sequential",
    ]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["mase"] <= 0.8 and metrics["naive_mase"] > 1  # issue 17's bar, on the stored rows
    assert 0.88 <= metrics["coverage_90"] <= 0.92
    reports = env / "reports"
    assert list(reports.glob("usage-forecast-*.csv")) and list(reports.glob("usage-forecast-*.png"))
    assert main(argv[:2] + argv[3:]) == 0  # without --json: the same figures, for people
    out = capsys.readouterr().out
    assert f"MASE {metrics['mase']:.3f}   seasonal-naive MASE {metrics['naive_mase']:.3f}" in out
    assert "90% bands cover" in out and "% of the held-out days" in out


def test_report_revenue_prints_a_table_and_writes_a_chart(env, capsys):
    argv = ["report", "revenue", "--prefix", PREFIX, "--fx-source", fx_source(SPEC), "--currency", "gbp"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MRR" in out and "2026-10" in out and "enterprise" in out
    assert Path(out.strip().splitlines()[-1].removeprefix("chart: ")).is_file()
