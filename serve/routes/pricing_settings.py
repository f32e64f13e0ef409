"""A tenant's pricing settings: its tier, and its contracts (enterprise) or licence (airgapped)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from invoicing import pricing_terms
from invoicing.errors import TenantNotFound
from invoicing.pricing_terms import TenantTerms
from pricing.errors import InvalidField
from serve.access import authorized
from serve.auth import Principal
from serve.routes.pricing_support import (
    check_reads_tenant,
    invalid,
    json_body,
    json_request_body,
    json_response,
    no_such_tenant,
)
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["pricing"])

_SETTINGS_EXAMPLE = {
    "tier": "enterprise",
    "contracts": [
        {
            "contract_id": "acme-2026",
            "effective_from": "2026-01-01T00:00:00Z",
            "effective_to": None,
            "rates": {"cpu_seconds": {"currency": "usd", "unit_amount_decimal": "4"}},
            "discount_percent": "10",
            "minimum_monthly_decimal": "300000",
        }
    ],
}


@router.get("/tenants/{tenant_id}/pricing", summary="A tenant's tier, contracts and licence")
async def read_settings(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    check_reads_tenant(principal, tenant_id)
    svc = services(request)
    try:
        terms = await pricing_terms.read_terms(svc.engine, svc.pricing_cache, tenant_id)
    except TenantNotFound:
        raise no_such_tenant(tenant_id) from None
    return json_response(_view(terms))


@router.put(
    "/tenants/{tenant_id}/pricing",
    summary="Assign a tier, contracts or a licence; takes effect on the very next quote",
    openapi_extra=json_request_body(
        "`tier`, and `contracts` (enterprise) or `licence` (airgapped)", _SETTINGS_EXAMPLE
    ),
)
async def write_settings(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> Response:
    document = await json_body(request)
    svc = services(request)
    try:
        terms = await pricing_terms.write_terms(
            svc.engine, svc.pricing_cache, tenant_id, document, principal.subject
        )
    except TenantNotFound:
        raise no_such_tenant(tenant_id) from None
    except InvalidField as error:
        raise invalid(error) from None
    return json_response(_view(terms))


def _view(terms: TenantTerms) -> dict[str, object]:
    if terms.settings is None:  # never set: the catalog terms of the tier it registered with
        never_set: dict[str, object] = {
            "tenant_id": terms.tenant_id,
            "tier": terms.tier,
            "contracts": [],
            "licence": None,
        }
        return {**never_set, "revision": 0}
    return {**terms.settings.to_json(), "revision": terms.revision}
