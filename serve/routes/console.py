"""The finance console (issue 19) for billing-admin, finance and viewer: invoice runs with their
progress, revenue, churn risk, the dunning queue, recent payments and webhook deliveries.

Reads go through the API in process, so each part shows only what the signed-in role may read
(webhook deliveries: billing-admin only, as the role table says). The one action, starting an
invoice run, is offered only to the roles the table lets start one, and the API checks it again.
Payments and the dunning queue have no list route yet; they come from the payments use cases
(payments/views.py), behind the same staff check.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from invoicing.document import TIER_NAMES
from payments.views import dunning_queue, recent_payments
from serve.access import ACCESS
from serve.auth import Principal
from serve.page_api import PageApi
from serve.pages import caller, error_page, form_allowed, form_of, render, words_for
from serve.services import services

router = APIRouter(include_in_schema=False)
V1 = "/api/v1"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def may(principal: Principal, method: str, path: str) -> bool:
    """Whether the role table lets this principal call the route: what the page offers."""
    return bool(principal.roles & ACCESS[(method, path)].roles)


@router.get("/console")
async def console(request: Request) -> HTMLResponse:
    words = words_for(request)
    found = await caller(request, words)
    if not isinstance(found, Principal):
        return found
    async with PageApi(request) as api:
        data = await api.get_many(
            {
                "runs": f"{V1}/invoice-runs",
                "revenue": f"{V1}/reports/revenue",
                "churn": f"{V1}/reports/churn?limit=10",
                "deliveries": f"{V1}/webhook-deliveries?limit=10",
            }
        )
        # 409: the revenue needs exchange rates nobody loaded; say so rather than "no revenue".
        revenue_needs_rates = api.answered.get(f"{V1}/reports/revenue") == 409
    payments = await recent_payments(services(request).payments)
    dunning = await dunning_queue(services(request).payments)
    return render(
        request,
        "console.html.j2",
        words,
        roles=sorted(found.roles),
        may_start_run=may(found, "POST", f"{V1}/invoice-runs"),
        may_see_deliveries=may(found, "GET", f"{V1}/webhook-deliveries"),
        runs=(data["runs"] or {}).get("runs", [])[:10],
        revenue=data["revenue"],
        revenue_needs_rates=revenue_needs_rates,
        churn=data["churn"],
        deliveries=_deliveries(data["deliveries"]),
        payments=payments,
        dunning=dunning,
        last_month=_last_month(),
        tier_names=TIER_NAMES,
        notice=request.query_params.get("notice"),
    )


def _deliveries(listing: Any) -> list[dict[str, Any]]:
    if not isinstance(listing, dict):
        return []
    return list(listing.get("deliveries", []))[:10]


def _last_month() -> str:
    today = datetime.now(UTC).date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@router.post("/console/invoice-runs")
async def start_run(request: Request) -> Response:
    words = words_for(request)
    found = await caller(request, words)
    if not isinstance(found, Principal):
        return found
    form = await form_of(request)
    if not form_allowed(request, form) or not MONTH.match(form.get("period", "")):
        return error_page(request, words, 403 if not form_allowed(request, form) else 422)
    # Unchecked boxes are absent from a posted form.
    body = {
        "period": form["period"],
        "finalize": form.get("finalize") == "on",
        "pdfs": form.get("pdfs") == "on",
    }
    async with PageApi(request) as api:
        answer = await api.post(f"{V1}/invoice-runs", body)
    notice = "started" if answer.status_code in (200, 202) else "refused"
    return RedirectResponse(f"/console?notice={notice}#runs", status_code=303)
