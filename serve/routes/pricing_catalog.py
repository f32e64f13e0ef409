"""The price catalog: read it, and add a version (a price change with its effective date)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from infra import pricing_store
from pricing.catalog import Catalog, CatalogVersion
from pricing.errors import InvalidField, NoPriceInForce
from pricing.json_fields import instant_text
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import (
    invalid,
    invalid_field,
    json_body,
    json_request_body,
    json_response,
    pricing_cache,
)
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["pricing"])
MAX_VERSION_ID = 64  # catalog_versions.version

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
    catalog, generation = await pricing_cache(request).current_catalog()
    return json_response(
        {
            **catalog.to_json(),
            "revision": generation.revision,
            "in_force": _in_force(catalog, datetime.now(UTC)),
        }
    )


def _in_force(catalog: Catalog, now: datetime) -> str | None:
    try:
        return catalog.version_at(now).version
    except NoPriceInForce:
        return None


@router.post(
    "/catalog/versions",
    status_code=201,
    summary="Add a catalog version: the prices of all five tiers from `effective_from` on",
    openapi_extra=json_request_body("A catalog version; prices as in design.md §3", _VERSION_EXAMPLE),
)
async def add_version(request: Request, principal: Annotated[Principal, Depends(authorized)]) -> Response:
    document = await json_body(request)
    svc = services(request)
    async with svc.engine.begin() as conn:
        # The row lock orders concurrent price changes: each is checked against the last.
        catalog, generation = await pricing_store.load_catalog(conn, for_update=True)
        version = _parse(document, catalog)
        same_id = next((v for v in catalog.versions if v.version == version.version), None)
        if same_id is not None:
            return _repeated(catalog, same_id, version, generation.revision)
        _check_not_backdated(version)
        try:
            catalog.with_version(version)
        except InvalidField as error:
            raise invalid(error) from None
        generation = await pricing_store.add_catalog_version(conn, version, principal.subject)
    return json_response(_created(catalog, version, generation.revision), 201)


def _parse(document: object, catalog: Catalog) -> CatalogVersion:
    try:
        version = CatalogVersion.from_json(document, "", catalog.currency)
    except InvalidField as error:
        raise invalid(error) from None
    if len(version.version) > MAX_VERSION_ID:
        raise invalid_field("version", f"must be at most {MAX_VERSION_ID} characters")
    return version


def _repeated(catalog: Catalog, stored: CatalogVersion, posted: CatalogVersion, revision: int) -> Response:
    """The same version posted again (a retry) is answered as before; other prices are a conflict."""
    if stored.to_json() != posted.to_json():
        raise Problem(
            409,
            "conflict",
            "Version exists",
            f"version: {posted.version!r} exists with other prices; versions are never changed",
        )
    return json_response(_created(catalog, stored, revision), 200)


def _check_not_backdated(version: CatalogVersion) -> None:
    """Usage is rated by the hour at the prices in force when the hour starts, so a change may take
    effect from the hour in progress on, but never reprice hours already gone."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if version.effective_from < hour:
        raise invalid_field("effective_from", f"must not be before the current hour ({instant_text(hour)})")


def _created(catalog: Catalog, version: CatalogVersion, revision: int) -> dict[str, object]:
    return {"catalog": catalog.name, "revision": revision, "version": version.to_json()}
