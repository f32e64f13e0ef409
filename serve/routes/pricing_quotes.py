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

from invoicing.quotes import Quote
from invoicing.quotes import quote as quote_month
from pricing.errors import NoPriceInForce
from pricing.json_fields import instant_text
from pricing.periods import Period
from serve.access import authorized
from serve.auth import Principal
from serve.routes.pricing_support import (
    RATING_ERRORS,
    check_reads_tenant,
    invalid_field,
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
        quoted = await quote_month(services(request).invoicer, tenant_id, period, now)
    except NoPriceInForce as error:
        raise invalid_field("month", str(error)) from None
    except RATING_ERRORS as error:
        raise rating_problem(error) from None
    return json_response(_view(quoted))


def _month(month: str | None, now: datetime) -> Period:
    if month is None:
        return Period.calendar_month(now.year, now.month)
    year, number = month.split("-")
    try:
        return Period.calendar_month(int(year), int(number))
    except ValueError:
        raise invalid_field("month", "must be a month as YYYY-MM, such as 2026-03") from None


def _view(quoted: Quote) -> dict[str, object]:
    rating = quoted.rating
    return {
        "tenant_id": quoted.tenant_id,
        "tier": quoted.settings.tier.value,
        "currency": rating.currency.code,
        "period": rating.period.to_json(),
        "as_of": instant_text(quoted.as_of),
        "lines": [line.to_json() for line in rating.lines],
        "subtotal": rating.subtotal.format_major(),
        "credits": {
            "currency": quoted.credit_balance.currency.code,
            "balance": quoted.credit_balance.format_major(),
            "applied": quoted.credits_applied.format_major(),
        },
        "amount_due": quoted.amount_due.format_major(),
        "revisions": {"catalog": quoted.catalog_revision, "tenant_pricing": quoted.pricing_revision},
    }
