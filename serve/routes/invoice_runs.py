"""Invoice runs: the automatic monthly run, runs asked for here, and CLI runs, with progress.
A run asked for here is pending until a replica's scheduler claims it (invoicing/scheduler.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from invoicing.invoice_runs import InvoiceRun, find_run, recent_runs, request_run
from pricing.errors import InvalidField
from pricing.periods import Period
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import invalid, invalid_field, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["invoice runs"])
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Annotated[str, Field(pattern=MONTH, description="the month, YYYY-MM; it must have ended")]
    # Strict, like usage's executions: pydantic's lax mode read `"pdfs": 0.0` as false.
    finalize: Annotated[bool, Field(strict=True)] = True
    pdfs: Annotated[bool, Field(strict=True)] = True


@router.post("/invoice-runs", status_code=202, summary="Invoice every tenant for a month (idempotent)")
async def start_run(
    request: Request, body: RunRequest, _: Annotated[Principal, Depends(authorized)]
) -> Response:
    year, month = (int(part) for part in body.period.split("-"))
    try:
        period = Period.calendar_month(year, month)
    except ValueError:  # the pattern lets year 0000 through (found by tests/test_fuzz_api.py)
        raise invalid_field("period", f"{body.period} is not a month of the calendar") from None
    try:
        run = await request_run(services(request).engine, period, finalize=body.finalize, pdfs=body.pdfs)
    except InvalidField as error:
        raise invalid(error) from None
    return json_response(run_view(run), status=202)


@router.get("/invoice-runs", summary="Recent invoice runs, newest first")
async def list_runs(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    runs = await recent_runs(services(request).engine, limit)
    return json_response({"runs": [run_view(run) for run in runs]})


@router.get("/invoice-runs/{run_id}", summary="An invoice run and its progress")
async def get_run(
    request: Request, run_id: uuid.UUID, _: Annotated[Principal, Depends(authorized)]
) -> Response:
    run = await find_run(services(request).engine, run_id)
    if run is None:
        raise Problem(404, "not-found", "No such invoice run", f"run_id: {run_id} does not exist")
    return json_response(run_view(run))


def run_view(run: InvoiceRun) -> dict[str, object]:
    total, done = run.tenants_total, run.tenants_done
    return {
        "run_id": str(run.run_id),
        "period": {"start": run.period.start.isoformat(), "end": run.period.end.isoformat()},
        "trigger": run.trigger,
        "status": run.status,
        "finalize": run.finalize,
        "pdfs": run.pdfs,
        "owner": run.owner,
        "tenants_total": total,
        "tenants_done": done,
        "progress": None if not total else round(done / total, 4),
        "outcomes": run.outcomes,
        "totals": run.totals,
        "failures": run.failures[:20],
        "error": run.error,
        "created_at": run.created_at.isoformat(),
        "started_at": None if run.started_at is None else run.started_at.isoformat(),
        "heartbeat_at": None if run.heartbeat_at is None else run.heartbeat_at.isoformat(),
        "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
    }
