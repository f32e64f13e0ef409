"""Credits: grant them to a tenant, and list a tenant's ledger with its balance.

A ledger is kept in the tenant's billing currency (`tenants.currency`), the currency it prepays
in; amounts in requests and responses are decimal strings in major units ("25.00").
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from infra import pricing_store
from pricing.credits import CreditLedger, Grant, GrantKind, LedgerEntry
from pricing.errors import InvalidField
from pricing.json_fields import instant_text
from pricing.money import Currency, Money
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import (
    check_reads_tenant,
    invalid,
    invalid_field,
    json_response,
    no_such_tenant,
)
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
    expires_at: AwareDatetime | None = None


@router.post("/tenants/{tenant_id}/credits", status_code=201, summary="Grant credit to a tenant")
async def grant_credit(
    request: Request,
    tenant_id: str,
    body: GrantIn,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    async with services(request).engine.begin() as conn:
        tenant = await pricing_store.lock_tenant(conn, tenant_id)  # one ledger writer at a time
        if tenant is None:
            raise no_such_tenant(tenant_id)
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
        grant = _grant(body, ledger)
        existing = next(
            (e for e in ledger.entries if isinstance(e, Grant) and e.grant_id == grant.grant_id), None
        )
        if existing is not None:
            return _repeated(ledger, existing, grant)
        try:
            ledger = await pricing_store.append_ledger_entry(conn, ledger, grant, principal.subject)
        except InvalidField as error:
            raise invalid(error) from None
    return json_response(_granted(ledger, grant), 201)


def _grant(body: GrantIn, ledger: CreditLedger) -> Grant:
    currency = ledger.currency
    if body.currency is not None and body.currency.lower() != currency.code:
        raise invalid_field("currency", f"must be the tenant's billing currency, {currency}")
    minor = Money.from_major(Decimal(body.amount), currency).minor_units
    if minor != minor.to_integral_value() or minor <= 0:
        raise invalid_field(
            "amount", f"must be positive, with at most {currency.digits} decimal places in {currency}"
        )
    # Never before the last entry, even if another API process's clock runs ahead of ours.
    at = max([datetime.now(UTC), *(entry.at for entry in ledger.entries[-1:])])
    if body.expires_at is not None and body.expires_at <= at:
        raise invalid_field("expires_at", "must be in the future")
    return Grant(
        grant_id=body.grant_id or f"grant-{uuid.uuid4().hex[:16]}",
        at=at,
        amount=minor.to_integral_value(),
        kind=GrantKind(body.kind),
        priority=body.priority,
        expires_at=None if body.expires_at is None else body.expires_at.astimezone(UTC),
    )


def _repeated(ledger: CreditLedger, stored: Grant, posted: Grant) -> Response:
    same = (stored.amount, stored.kind, stored.priority, stored.expires_at) == (
        posted.amount,
        posted.kind,
        posted.priority,
        posted.expires_at,
    )
    if not same:
        raise Problem(
            409, "conflict", "Grant exists", f"grant_id: {posted.grant_id!r} was granted with other terms"
        )
    return json_response(_granted(ledger, stored), 200)


def _granted(ledger: CreditLedger, grant: Grant) -> dict[str, object]:
    return {
        "tenant_id": ledger.tenant_id,
        "grant": entry_json(grant, ledger.currency),
        "balance": ledger.balance(datetime.now(UTC)).format_major(),
    }


@router.get("/tenants/{tenant_id}/credits", summary="A tenant's credit ledger and balance now")
async def list_credits(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    check_reads_tenant(principal, tenant_id)
    async with services(request).engine.connect() as conn:
        tenant = await pricing_store.tenant_generations(conn, tenant_id)
        if tenant is None:
            raise no_such_tenant(tenant_id)
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
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
