"""Quotes: a tenant's charges for a month so far, rated from live usage (a dry-run invoice).

The month is rated as its invoice would be if it closed now: usage so far (including what the
shard actors have not stored yet), the full monthly terms (base fee, minimum true-up), then the
tenant's credits as they would apply. Before tax. Prices come through the pricing cache, whose
generation check makes a price change count from the very next quote.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from infra import pricing_store
from infra.pricing_store import TenantGenerations
from pricing.credits import CreditLedger
from pricing.errors import NoPriceInForce
from pricing.json_fields import instant_text
from pricing.money import Money
from pricing.periods import Period
from pricing.rating import Rating
from pricing.tenant_pricing import TenantPricing
from serve.access import authorized
from serve.auth import Principal
from serve.routes.pricing_support import (
    RATING_ERRORS,
    check_reads_tenant,
    invalid_field,
    invoicer,
    json_response,
    rating_problem,
)
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["pricing"])


@router.get("/tenants/{tenant_id}/quote", summary="Charges for the month so far from live usage, before tax")
async def quote(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
    month: Annotated[
        str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default this month")
    ] = None,
) -> Response:
    check_reads_tenant(principal, tenant_id)
    now = datetime.now(UTC)
    period = _month(month, now)
    try:
        rated = await invoicer(request).rate(tenant_id, period)
    except NoPriceInForce as error:
        raise invalid_field("month", str(error)) from None
    except RATING_ERRORS as error:
        raise rating_problem(error) from None
    tenant = rated.generations
    async with services(request).engine.connect() as conn:
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
    return json_response(_quote(tenant, rated.settings, rated.rating, ledger, now))


def _month(month: str | None, now: datetime) -> Period:
    if month is None:
        return Period.calendar_month(now.year, now.month)
    year, number = month.split("-")
    try:
        return Period.calendar_month(int(year), int(number))
    except ValueError:
        raise invalid_field("month", "must be a month as YYYY-MM, such as 2026-03") from None


def _quote(
    tenant: TenantGenerations, settings: TenantPricing, rating: Rating, ledger: CreditLedger, now: datetime
) -> dict[str, object]:
    subtotal = rating.subtotal
    applied = _credits_applied(ledger, subtotal, now)
    due = subtotal - applied if applied.currency == subtotal.currency else subtotal
    return {
        "tenant_id": tenant.tenant_id,
        "tier": settings.tier.value,
        "currency": rating.currency.code,
        "period": rating.period.to_json(),
        "as_of": instant_text(now),
        "lines": [line.to_json() for line in rating.lines],
        "subtotal": subtotal.format_major(),
        "credits": {
            "currency": ledger.currency.code,
            "balance": ledger.balance(now).format_major(),
            "applied": applied.format_major(),
        },
        "amount_due": max(due, Money.zero(due.currency)).format_major(),
        "revisions": {
            "catalog": tenant.catalog.revision,
            "tenant_pricing": 0 if tenant.settings is None else tenant.settings.revision,
        },
    }


def _credits_applied(ledger: CreditLedger, subtotal: Money, now: datetime) -> Money:
    """What the credits would cover, drawn in the ledger's order without writing anything. Credits
    in another currency than the charges wait for the invoice's FX conversion."""
    if ledger.currency != subtotal.currency or subtotal.minor_units <= 0:
        return Money.zero(ledger.currency)
    _, drawn = ledger.consume(subtotal, now, reference="quote")
    return drawn
