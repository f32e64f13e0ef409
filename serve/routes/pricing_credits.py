"""Credits: grant them to a tenant, and list a tenant's ledger with its balance.

A ledger is kept in the tenant's billing currency (`tenants.currency`), the currency it prepays
in; amounts in requests and responses are decimal strings in major units ("25.00").
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from invoicing import credits
from invoicing.credits import GrantRequest
from invoicing.errors import AlreadyExists, TenantNotFound
from pricing.credits import Grant, GrantKind, LedgerEntry
from pricing.errors import InvalidField
from pricing.json_fields import instant_text
from pricing.money import Currency, Money
from serve.access import authorized
from serve.auth import Principal
from serve.instants import RFC_3339
from serve.problems import Problem
from serve.routes.pricing_support import check_reads_tenant, invalid, json_response, no_such_tenant
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["pricing"])


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grant_id: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
            description="Makes a retry safe: the same grant again is answered, not added twice",
        ),
    ] = None
    amount: Annotated[str, Field(pattern=r"^\d{1,15}(\.\d{1,12})?$", description='major units, e.g. "25.00"')]
    currency: Annotated[str | None, Field(description="the tenant's billing currency; the default")] = None
    kind: Literal["prepaid", "promotional"]
    priority: Annotated[
        int, Field(ge=0, le=1_000_000, strict=True, description="lower is consumed first")
    ] = 0
    expires_at: Annotated[AwareDatetime | None, RFC_3339] = None


@router.post("/tenants/{tenant_id}/credits", status_code=201, summary="Grant credit to a tenant")
async def grant_credit(
    request: Request,
    tenant_id: str,
    body: GrantIn,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    asked = GrantRequest(
        amount=Decimal(body.amount),
        kind=GrantKind(body.kind),
        priority=body.priority,
        grant_id=body.grant_id,
        currency=body.currency,
        expires_at=body.expires_at,
    )
    try:
        granted = await credits.grant_credit(services(request).engine, tenant_id, asked, principal.subject)
    except TenantNotFound:
        raise no_such_tenant(tenant_id) from None
    except InvalidField as error:
        raise invalid(error) from None
    except AlreadyExists as error:
        raise Problem(409, "conflict", "Grant exists", str(error)) from None
    ledger = granted.ledger
    return json_response(
        {
            "tenant_id": ledger.tenant_id,
            "grant": entry_json(granted.grant, ledger.currency),
            "balance": ledger.balance(datetime.now(UTC)).format_major(),
        },
        201 if granted.created else 200,
    )


@router.get("/tenants/{tenant_id}/credits", summary="A tenant's credit ledger and balance now")
async def list_credits(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    check_reads_tenant(principal, tenant_id)
    try:
        ledger = await credits.credit_ledger(services(request).engine, tenant_id)
    except TenantNotFound:
        raise no_such_tenant(tenant_id) from None
    now = datetime.now(UTC)
    return json_response(
        {
            "tenant_id": tenant_id,
            "currency": ledger.currency.code,
            "as_of": instant_text(now),
            "balance": ledger.balance(now).format_major(),
            "entries": [entry_json(entry, ledger.currency) for entry in ledger.entries],
        }
    )


def entry_json(entry: LedgerEntry, currency: Currency) -> dict[str, object]:
    document: dict[str, object] = {
        "type": "grant" if isinstance(entry, Grant) else "debit",
        "grant_id": entry.grant_id,
        "at": instant_text(entry.at),
        "amount": Money(entry.amount, currency).format_major(),
    }
    if isinstance(entry, Grant):
        document.update(
            kind=entry.kind.value,
            priority=entry.priority,
            expires_at=None if entry.expires_at is None else instant_text(entry.expires_at),
        )
    else:
        document["reference"] = entry.reference
    return document
