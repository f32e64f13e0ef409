"""The tenant portal (issue 19): sign-in by link, the tenant's page, paying an invoice, sign-out.

Everything a page shows it reads through the API in process (serve/page_api.py) with the
session's token, so a tenant's page holds exactly what its token may read. Live parts (usage,
month-to-date charges) are refreshed by static/portal/portal.js from the same API.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from invoicing.document import METER_NAMES, TIER_NAMES
from payments.approvals import abandon_on_return, capture_on_return
from payments.errors import PaymentError
from serve.auth import Principal, mint
from serve.page_api import PageApi
from serve.page_words import Words
from serve.pages import caller, error_page, form_allowed, form_of, render, words_for
from serve.problems import Problem
from serve.services import services
from serve.sessions import (
    COOKIE,
    SESSION_TTL_S,
    Session,
    close_session,
    cookie_header,
    is_tls,
    open_session,
    session_id_of,
    spend_link,
)

router = APIRouter(include_in_schema=False)
STAFF_ORDER = ("billing-admin", "finance", "viewer")  # the most a staff link's session may do
PAYABLE = frozenset({"finalized", "uncollectible"})
PAY_METHODS = ("stripe", "paypal")  # the methods a tenant pays with from the page (wire: by its bank)
NOTICES = ("paid", "pending", "failed", "cancelled", "in-progress")
# Unit symbols, the same in every language.
UNITS = {
    "cpu_seconds": "s",
    "memory_gb_hours": "GB·h",
    "storage_gb_hours": "GB·h",
    "network_gb": "GB",
    "executions": "",
}
V1 = "/api/v1"


@router.get("/portal/login")
async def login(request: Request, token: Annotated[str, Query(max_length=8192)] = "") -> Response:
    words = words_for(request)
    svc = services(request)
    try:
        principal = svc.auth.principal(_bearing(token))
    except Problem:
        return error_page(request, words, 401)
    role = (
        "tenant"
        if "tenant" in principal.roles
        else next((r for r in STAFF_ORDER if r in principal.roles), None)
    )
    if role is None or (role == "tenant" and not principal.tenant_id):
        return error_page(request, words, 403)  # the kernel has no pages
    expires = int(jwt.decode(token, options={"verify_signature": False})["exp"])  # checked just above
    prefix = svc.settings.redis_prefix
    if not await spend_link(svc.redis, prefix, token, expires - int(time.time()) + 60):
        return error_page(request, words, 401)
    if svc.settings.jwt_jwks:
        # The identity provider signs tokens; the session lasts as long as the one it issued.
        session_token, session_expires = token, expires
    else:  # dev keys: a session token of its own, so the session outlives the ten-minute link
        session_expires = int(time.time()) + SESSION_TTL_S
        session_token = mint(
            svc.settings.jwt_secret or "", role, principal.tenant_id, SESSION_TTL_S, principal.subject
        )
    session = Session(session_token, uuid.uuid4().hex, role, principal.tenant_id, session_expires)
    session_id = await open_session(svc.redis, prefix, session)
    target = "/portal" if role == "tenant" else "/console"
    # A page that moves on, not a 303: a SameSite=Strict cookie set on a navigation that came from
    # another site (a mail client, a chat) is not sent on that navigation's redirect.
    response = render(
        request,
        "moving_on.html.j2",
        words,
        target=target,
        heading=words("Signed in"),
        label=words("Continue"),
    )
    response.headers.append(
        "set-cookie", cookie_header(session_id, session_expires - int(time.time()), is_tls(request.scope))
    )
    return response


def _bearing(token: str) -> Request:
    """A request carrying `token` as its bearer, for the authenticator's checks."""
    return Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})


@router.post("/portal/logout")
async def logout(request: Request) -> Response:
    words = words_for(request)
    session_id = session_id_of(list(request.scope["headers"]))
    if not form_allowed(request, await form_of(request)) or session_id is None:
        return error_page(request, words, 403)
    svc = services(request)
    await close_session(svc.redis, svc.settings.redis_prefix, session_id)
    response = render(request, "signed_out.html.j2", words)
    response.headers.append("set-cookie", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
    return response


@router.get("/portal")
async def portal(request: Request) -> HTMLResponse:
    found = await caller(request, words_for(request))
    if not isinstance(found, Principal):
        return found
    tenant_id = found.tenant_id or ""
    async with PageApi(request) as api:
        data = await api.get_many(
            {
                "tenant": f"{V1}/tenants/{tenant_id}",
                "usage": f"{V1}/usage/{tenant_id}?granularity=hour",
                "quote": f"{V1}/tenants/{tenant_id}/quote",
                "forecast": f"{V1}/tenants/{tenant_id}/forecast",
                "invoices": f"{V1}/invoices?tenant_id={tenant_id}&limit=24",
                "credits": f"{V1}/tenants/{tenant_id}/credits",
                "alerts": f"{V1}/tenants/{tenant_id}/alerts",
                "endpoints": f"{V1}/webhook-endpoints",
            }
        )
        invoices = (data["invoices"] or {}).get("invoices", [])
        data["credit_notes"] = await _credit_notes(api, invoices)
    tenant = data["tenant"] or {}
    words = words_for(request, fallback=str(tenant.get("locale") or "en"))
    notice = request.query_params.get("notice")
    return render(
        request,
        "portal.html.j2",
        words,
        tenant_id=tenant_id,
        tenant=tenant,
        tier_name=TIER_NAMES.get(str(tenant.get("tier")), str(tenant.get("tier") or "")),
        meters=[{"key": key, "name": name, "unit": UNITS[key]} for key, name in METER_NAMES.items()],
        meter_names=METER_NAMES,
        usage=usage_totals(data["usage"], datetime.now(UTC)),
        as_of=datetime.now(UTC).strftime("%H:%M:%S UTC"),
        currency=str(tenant.get("currency") or "usd"),
        quote=data["quote"],
        projection=(data["forecast"] or {}).get("projected_invoice"),
        invoices=invoices,
        payable=PAYABLE,
        credit_notes=data["credit_notes"],
        credits=data["credits"],
        alerts=(data["alerts"] or {}).get("alerts", []),
        endpoints=(data["endpoints"] or {}).get("endpoints", []),
        notice=notice if notice in NOTICES else None,
    )


def usage_totals(usage: dict[str, Any] | None, now: datetime) -> dict[str, dict[str, str]]:
    """Per meter, this hour's, today's and the month's quantities from the hourly rows (UTC)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    sums = {meter: {"hour": Decimal(0), "day": Decimal(0), "month": Decimal(0)} for meter in METER_NAMES}
    for row in (usage or {}).get("rows", []):
        start = datetime.fromisoformat(row["start"])
        for meter, totals in sums.items():
            quantity = Decimal(str(row.get(meter, "0")))
            totals["month"] += quantity
            totals["day"] += quantity if start >= day else 0
            totals["hour"] += quantity if start >= hour else 0
    return {
        meter: {k: format(v.normalize(), "f") for k, v in totals.items()} for meter, totals in sums.items()
    }


async def _credit_notes(api: PageApi, invoices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    issued = [invoice for invoice in invoices if invoice.get("number")]  # drafts have none
    found = await asyncio.gather(*(api.get(f"{V1}/invoices/{i['invoice_id']}/credit-notes") for i in issued))
    return [note for listing in found if listing for note in listing.get("credit_notes", [])]


@router.post("/portal/invoices/{invoice_id}/pay")
async def pay(request: Request, invoice_id: uuid.UUID) -> Response:
    words = words_for(request)
    found = await caller(request, words)
    if not isinstance(found, Principal):
        return found
    form = await form_of(request)
    if not form_allowed(request, form):
        return error_page(request, words, 403)
    method = form.get("method", "stripe")
    if method not in PAY_METHODS:
        return error_page(request, words, 422)
    # One key per rendered form and method: resubmitting it cannot charge twice (the API's
    # idempotency); the other button of the same form is another payment.
    key = f"portal-{invoice_id}-{method}-{form.get('nonce', '')[:32]}"
    async with PageApi(request) as api:
        answer = await api.post(
            f"{V1}/payments",
            {"invoice_id": str(invoice_id), "payment_method": method},
            {"Idempotency-Key": key},
        )
    if answer.status_code in (403, 404):
        return error_page(request, words, answer.status_code)
    payment = answer.json() if answer.status_code in (200, 201) else {}
    approval = str(payment.get("approval_url") or "")
    if payment.get("status") == "pending" and approval.startswith(("https://", "http://")):
        # The payer approves at the provider, which sends them back to /paypal/return. A page that
        # moves on, not a redirect: the pages' content policy lets forms post only to this site.
        heading, label = words("Continue at PayPal to approve the payment."), words("Continue to PayPal")
        return render(request, "moving_on.html.j2", words, target=approval, heading=heading, label=label)
    return RedirectResponse(
        f"/portal?notice={_notice(payment, answer.status_code)}#invoices", status_code=303
    )


def _notice(payment: dict[str, Any], status_code: int) -> str:
    if status_code == 409:
        return "in-progress"
    return {"completed": "paid", "pending": "pending"}.get(str(payment.get("status")), "failed")


@router.get("/paypal/return")
async def paypal_return(request: Request, token: Annotated[str, Query(max_length=64)] = "") -> Response:
    """Where PayPal sends the payer after approving (`token` is the order id). Needs no session:
    it only captures what the payer approved at PayPal, once (payments/approvals.py)."""
    words = words_for(request)
    try:
        payment = await capture_on_return(services(request).payments, "paypal", token)
    except PaymentError:
        payment_status = "failed"
    else:
        if payment is None:
            return error_page(request, words, 404)
        payment_status = payment.status.value
    notice = {"completed": "paid", "pending": "pending"}.get(payment_status, "failed")
    return _back_to_portal(request, words, notice)


@router.get("/paypal/cancel")
async def paypal_cancel(request: Request, token: Annotated[str, Query(max_length=64)] = "") -> Response:
    """Where PayPal sends a payer who cancelled (`token` is the order id): nothing was taken, and
    the payment is abandoned so that the invoice can be paid again (payments/approvals.py)."""
    await abandon_on_return(services(request).payments, "paypal", token)
    return _back_to_portal(request, words_for(request), "cancelled")


def _back_to_portal(request: Request, words: Words, notice: str) -> Response:
    # A page that moves on, not a 303: the session's SameSite=Strict cookie is not sent on a
    # redirect of a navigation that came from PayPal's site.
    target = f"/portal?notice={notice}#invoices"
    return render(
        request,
        "moving_on.html.j2",
        words,
        target=target,
        heading=words("Back from PayPal"),
        label=words("Continue"),
    )
