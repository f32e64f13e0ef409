"""An invoice run submitted as a Ray job (what `ray job submit` does) to the local cluster that
runs the service completes, and its run shows in the API."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import ray
from ray.job_submission import JobStatus, JobSubmissionClient

from tests.conftest import auth, register_tenant

ROOT = Path(__file__).resolve().parents[1]


def _submit(client: JobSubmissionClient, **job) -> str:
    """Submit, waiting for the dashboard's job agent, which starts a little after the cluster (over
    a minute on a loaded machine: a run beside other work once saw "No available agent" after 60 s)."""
    deadline = time.monotonic() + 180
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def _run_job(settings, command: str) -> tuple[JobStatus, str]:
    """Submit `python -m cli.main <command>` with the project as the job's working dir, as `ray
    job submit --working-dir .` does, and wait for it to end."""
    dashboard = ray._private.worker._global_node.address_info["webui_url"]
    client = JobSubmissionClient(f"http://{dashboard}")
    job = _submit(
        client,
        entrypoint=f"{sys.executable} -m cli.main {command}",
        runtime_env={
            "working_dir": str(ROOT),
            "excludes": [".venv", ".git", ".billing*", "*.pdf", "bench"],
            "env_vars": {
                "DATABASE_URL": settings.database_url,
                "REDIS_URL": settings.redis_url,
                "BILLING_REDIS_PREFIX": settings.redis_prefix,
                "BILLING_SHARDS": str(settings.shards),
                "BILLING_DATA_DIR": str(settings.data_dir),
            },
        },
    )
    deadline = time.monotonic() + 180
    while not (status := client.get_job_status(job)).is_terminal():
        assert time.monotonic() < deadline, client.get_job_logs(job)[-2000:]
        time.sleep(1)
    return status, client.get_job_logs(job)


def test_an_invoice_run_submitted_as_a_ray_job_completes(api, tokens, stack):
    register_tenant(api, tokens, f"job-{uuid.uuid4().hex[:8]}", tier="lite")
    status, logs = _run_job(stack.settings, "invoice-run --period 2025-07 --draft")
    # The CLI exits 1 when a tenant could not be invoiced (other tests leave EUR tenants without
    # July rates in the session's database); the job itself ran to its end either way.
    assert status in (JobStatus.SUCCEEDED, JobStatus.FAILED), logs[-3000:]
    assert "period 2025-07: created" in logs, logs[-3000:]
    runs = api.get("/api/v1/invoice-runs", headers=auth(tokens["viewer"])).json()["runs"]
    july = [r for r in runs if r["period"]["start"].startswith("2025-07-01") and r["trigger"] == "cli"]
    assert july and july[0]["status"] == "completed" and july[0]["tenants_done"] == july[0]["tenants_total"]


def test_a_usage_forecast_submitted_as_a_ray_job_completes(stack, tmp_path):
    out = tmp_path / "reports"
    status, logs = _run_job(stack.settings, f"forecast usage --tenants 24 --seed 11 --json --out {out}")
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert '"mase"' in logs, logs[-3000:]
    assert list(out.glob("*.csv")) and list(out.glob("*.png"))
