"""Tenants: who is billed, on which tier, in which currency and country."""

from __future__ import annotations

from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from babel.numbers import get_territory_currencies, list_currencies
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from stdnum.eu import vat
from stdnum.exceptions import ValidationError as VatError

from infra import tenant_store
from infra.tenant_store import Tenant
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.services import services
from serve.usage_events import TENANT_ID

router = APIRouter(prefix="/api/v1", tags=["tenants"])
Tier = Literal["zero", "shared", "lite", "enterprise", "airgapped"]
_CURRENCIES = frozenset(list_currencies())
# Babel's two-letter territories that have a currency: the countries, less groupings such as ZZ
# (unknown) or UN; EU has a currency but is not a country.
_COUNTRIES = frozenset(
    code
    for code in Locale("en").territories
    if len(code) == 2 and code.isalpha() and code != "EU" and get_territory_currencies(code)
)


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=TENANT_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tier: Tier
    currency: Annotated[str, Field(description="ISO 4217 code, e.g. usd")]
    country: Annotated[str, Field(description="ISO 3166-1 alpha-2, e.g. DE")]
    region: Annotated[str | None, Field(max_length=64, description="e.g. a US state: CA")] = None
    vat_id: Annotated[str | None, Field(max_length=32)] = None
    locale: str = "en"

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value.upper() not in _CURRENCIES:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value.lower()

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if value.upper() not in _COUNTRIES:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return value.upper()

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return vat.validate(value)
        except VatError as error:
            raise ValueError(f"not a valid EU VAT number: {error}") from None

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            return str(Locale.parse(value.replace("-", "_")))
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"{value!r} is not a known locale") from None


class TenantOut(TenantIn):
    pass


def _out(tenant: Tenant) -> TenantOut:
    return TenantOut.model_construct(**{k: getattr(tenant, k) for k in TenantOut.model_fields})


@router.post("/tenants", status_code=201, response_model=TenantOut, summary="Register a tenant")
async def create_tenant(
    request: Request,
    response: Response,
    tenant: TenantIn,
    _: Annotated[Principal, Depends(authorized)],
) -> TenantOut:
    svc = services(request)
    async with svc.engine.begin() as conn:
        row = await tenant_store.insert_tenant(conn, svc.cipher, **tenant.model_dump())
        if row is None:
            existing = _out(await tenant_store.find_tenant(conn, svc.cipher, tenant.tenant_id))
            if existing.model_dump() != tenant.model_dump():
                raise Problem(
                    409,
                    "conflict",
                    "Tenant exists",
                    f"tenant_id: {tenant.tenant_id!r} is registered with other details",
                )
            response.status_code = 200  # the same registration again: idempotent
            return existing
    return _out(row)


@router.get("/tenants/{tenant_id}", response_model=TenantOut, summary="A tenant")
async def get_tenant(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> TenantOut:
    svc = services(request)
    if not principal.may_read_tenant(tenant_id):
        raise Problem(403, "forbidden", "Forbidden", "a tenant token reads only its own tenant")
    async with svc.engine.connect() as conn:
        row = await tenant_store.find_tenant(conn, svc.cipher, tenant_id)
    if row is None:
        raise Problem(404, "not-found", "No such tenant", f"tenant_id: {tenant_id!r} is not registered")
    return _out(row)
