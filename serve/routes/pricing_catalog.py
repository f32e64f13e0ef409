"""The price catalog: read it, and add a version (a price change with its effective date)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from invoicing import catalog
from invoicing.errors import AlreadyExists
from pricing.errors import InvalidField
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import invalid, json_body, json_request_body, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["pricing"])

_VERSION_EXAMPLE = {
    "version": "2026-12",
    "effective_from": "2026-12-01T00:00:00Z",
    "plans": {
        "zero": {"prices": {"executions": {"currency": "usd", "unit_amount_decimal": "0.1"}}},
        "shared": {"prices": {"cpu_seconds": {"currency": "usd", "unit_amount_decimal": "4"}}},
        "lite": {
            "prices_from": "shared",
            "base_fee_monthly_decimal": "9900",
            "included_monthly": {"cpu_seconds": "720"},
        },
        "enterprise": {"prices_from": "shared", "minimum_monthly_decimal": "500000"},
        "airgapped": {"licence_fee_decimal": "5000000", "support_yearly_decimal": "1000000"},
    },
}


@router.get("/catalog", summary="The price catalog: every version, and the one in force now")
async def read_catalog(request: Request, _: Annotated[Principal, Depends(authorized)]) -> Response:
    now = await catalog.current_catalog(services(request).pricing_cache)
    return json_response({**now.catalog.to_json(), "revision": now.revision, "in_force": now.in_force})


@router.post(
    "/catalog/versions",
    status_code=201,
    summary="Add a catalog version: the prices of all five tiers from `effective_from` on",
    openapi_extra=json_request_body("A catalog version; prices as in design.md §3", _VERSION_EXAMPLE),
)
async def add_version(request: Request, principal: Annotated[Principal, Depends(authorized)]) -> Response:
    document = await json_body(request)
    try:
        added = await catalog.add_version(services(request).engine, document, principal.subject)
    except InvalidField as error:
        raise invalid(error) from None
    except AlreadyExists as error:
        raise Problem(409, "conflict", "Version exists", str(error)) from None
    return json_response(
        {"catalog": added.catalog, "revision": added.revision, "version": added.version.to_json()},
        201 if added.created else 200,
    )
