"""A tenant's pricing settings: its tier, and its contracts (enterprise) or licence (airgapped)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from infra import pricing_store
from pricing.catalog import Catalog
from pricing.errors import InvalidField
from pricing.tenant_pricing import TenantPricing
from serve.access import authorized
from serve.auth import Principal
from serve.routes.pricing_support import (
    check_reads_tenant,
    invalid,
    invalid_field,
    json_body,
    json_object,
    json_request_body,
    json_response,
    no_such_tenant,
    pricing_cache,
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
    async with services(request).engine.connect() as conn:
        tenant = await pricing_store.tenant_generations(conn, tenant_id)
    if tenant is None:
        raise no_such_tenant(tenant_id)
    if tenant.settings is None:  # never set: the catalog terms of the tier it registered with
        never_set: dict[str, object] = {
            "tenant_id": tenant_id,
            "tier": tenant.tier,
            "contracts": [],
            "licence": None,
        }
        return json_response({**never_set, "revision": 0})
    settings = await pricing_cache(request).settings(tenant)
    return json_response({**settings.to_json(), "revision": tenant.settings.revision})


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
    catalog, _ = await pricing_cache(request).current_catalog()
    async with services(request).engine.begin() as conn:
        if await pricing_store.lock_tenant(conn, tenant_id) is None:
            raise no_such_tenant(tenant_id)
        settings = _parse(document, tenant_id, catalog)
        stored = await pricing_store.load_tenant_pricing(conn, tenant_id)
        if stored is not None and stored[0].to_json() == settings.to_json():
            return json_response({**settings.to_json(), "revision": stored[1].revision})  # nothing changed
        generation = await pricing_store.save_tenant_pricing(conn, settings, principal.subject)
    return json_response({**settings.to_json(), "revision": generation.revision})


def _parse(document: Any, tenant_id: str, catalog: Catalog) -> TenantPricing:
    settings = json_object(document)
    if settings.get("tenant_id", tenant_id) != tenant_id:
        raise invalid_field("tenant_id", "must be the tenant of the URL, or left out")
    try:
        parsed = TenantPricing.from_json({**settings, "tenant_id": tenant_id})
    except InvalidField as error:
        raise invalid(error) from None
    # Rating refuses a contract price in another currency than the catalog's; say so now.
    for index, contract in enumerate(parsed.contracts):
        for meter, price in contract.rates.items():
            if price.currency != catalog.currency:
                raise invalid_field(
                    f"contracts[{index}].rates.{meter}.currency",
                    f"must be the catalog's currency, {catalog.currency}",
                )
    return parsed
