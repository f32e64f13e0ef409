"""The automatic invoice run: a closed month is invoiced once its grace period ends, by exactly one
of several schedulers (API replicas), the run shows in the API with its progress, and a run whose
owner died is taken over and finished."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from infra import run_store
from infra.database import create_engine
from invoicing.scheduler import InvoiceScheduler, due_period
from pricing.periods import Period
from tests.conftest import auth
from tests.stack_support import sql

JUNE = Period.calendar_month(2025, 6)


def test_a_month_is_due_once_its_grace_period_has_ended():
    grace = 3 * 86_400
    assert due_period(datetime(2025, 7, 3, 23, 59, tzinfo=UTC), grace) is None
    assert due_period(datetime(2025, 7, 4, tzinfo=UTC), grace) == JUNE
    assert due_period(datetime(2025, 7, 31, tzinfo=UTC), grace) == JUNE
    assert due_period(datetime(2026, 1, 1, tzinfo=UTC), 0) == Period.calendar_month(2025, 12)


def _wait_for_run(api, tokens, run_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        run = api.get(f"/api/v1/invoice-runs/{run_id}", headers=auth(tokens["viewer"])).json()
        if run["status"] in ("completed", "failed"):
            return run
        assert time.monotonic() < deadline, f"run still {run['status']}: {run}"
        time.sleep(0.3)


def test_two_schedulers_start_a_due_month_once_and_it_invoices_its_tenants(api, tokens, stack):
    ids = [f"sched-{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    for tenant_id in ids:
        body = {"tenant_id": tenant_id, "name": tenant_id, "tier": "lite", "currency": "usd", "country": "US"}
        assert (
            api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"])).status_code == 201
        )
    # Customers since before June 2025: the schedule invoices only tenants that existed then.
    sql(stack.settings, "UPDATE tenants SET created_at = '2025-01-01Z' WHERE tenant_id = ANY(:ids)", ids=ids)
    settings = stack.settings.with_(auto_invoice=True, invoice_grace_s=3 * 86_400)
    just_after_grace = datetime(2025, 7, 4, 0, 0, 1, tzinfo=UTC)

    async def two_replicas_tick():
        engine = create_engine(settings.database_url)
        try:
            first, second = (
                InvoiceScheduler(engine, settings, "replica-1"),
                InvoiceScheduler(engine, settings, "replica-2"),
            )
            return await asyncio.gather(first.tick(just_after_grace), second.tick(just_after_grace))
        finally:
            await engine.dispose()

    asyncio.run(two_replicas_tick())
    runs = sql(
        settings,
        "SELECT run_id FROM invoice_runs WHERE trigger = 'schedule' AND period_start = :start",
        start=JUNE.start,
    )
    assert len(runs) == 1
    run = _wait_for_run(api, tokens, str(runs[0][0]))
    assert run["status"] == "completed" and run["progress"] == 1.0
    assert run["tenants_done"] == run["tenants_total"] >= len(ids)
    invoices = sql(
        settings,
        "SELECT tenant_id, status, total FROM invoices WHERE tenant_id = ANY(:ids) AND period_start = :start",
        ids=ids,
        start=JUNE.start,
    )
    assert sorted((tenant, status, str(total)) for tenant, status, total in invoices) == [
        (tenant_id, "finalized", "99.00")
        for tenant_id in sorted(ids)  # the lite base fee, no usage
    ]
    asyncio.run(two_replicas_tick())  # the month is not scheduled twice
    assert (
        len(
            sql(
                settings,
                "SELECT 1 FROM invoice_runs WHERE trigger = 'schedule' AND period_start = :s",
                s=JUNE.start,
            )
        )
        == 1
    )


def test_a_run_asked_for_through_the_api_is_carried_out_by_a_replica(api, tokens, stack):
    finance = auth(tokens["finance"])
    refused = api.post("/api/v1/invoice-runs", json={"period": "2999-01"}, headers=finance)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "period"
    assert api.post("/api/v1/invoice-runs", json={"period": "2025-13"}, headers=finance).status_code == 422
    assert (
        api.post(
            "/api/v1/invoice-runs", json={"period": "2025-02"}, headers=auth(tokens["viewer"])
        ).status_code
        == 403
    )

    started = api.post("/api/v1/invoice-runs", json={"period": "2025-02", "pdfs": False}, headers=finance)
    assert started.status_code == 202 and started.json()["trigger"] == "api"
    run = _wait_for_run(api, tokens, started.json()["run_id"])
    assert run["status"] == "completed" and run["owner"].startswith("scheduler:")
    assert run["tenants_done"] == run["tenants_total"] > 0
    listed = api.get("/api/v1/invoice-runs", headers=finance).json()["runs"]
    assert run["run_id"] in [r["run_id"] for r in listed]


def test_a_run_whose_owner_went_silent_is_taken_over_and_finished(api, tokens, stack):
    async def abandoned_run():
        engine = create_engine(stack.settings.database_url)
        try:
            async with engine.begin() as conn:
                run = await run_store.create(
                    conn, Period.calendar_month(2025, 3), "cli", pdfs=False, owner="cli:dead"
                )
                await conn.execute(
                    text(
                        "UPDATE invoice_runs SET heartbeat_at = now() - interval '1 hour',"
                        " lease_until = now() - interval '1 hour' WHERE run_id = :r"
                    ),
                    {"r": run.run_id},
                )
                return run.run_id
        finally:
            await engine.dispose()

    run = _wait_for_run(api, tokens, str(asyncio.run(abandoned_run())))
    assert run["status"] == "completed" and run["owner"] != "cli:dead"
    assert run["tenants_done"] == run["tenants_total"]
