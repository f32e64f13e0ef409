"""Tenants: who is billed, on which tier, in which currency and country."""

from __future__ import annotations

from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from babel.numbers import get_territory_currencies, list_currencies
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from stdnum.eu import vat
from stdnum.exceptions import ValidationError as VatError

from invoicing.tenants import Tenant, TenantExists, find_tenant, register_tenant
from invoicing.tenants import update_tenant as change_tenant
from serve.access import authorized
from serve.auth import Principal
from serve.free_text import NO_CARD_NUMBERS
from serve.problems import Problem
from serve.services import services
from serve.usage_events import TENANT_ID

router = APIRouter(prefix="/api/v1", tags=["tenants"])
Tier = Literal["zero", "shared", "lite", "enterprise", "airgapped"]
_CURRENCIES = frozenset(list_currencies())
# Babel's two-letter territories that have a currency: the countries, less groupings such as ZZ
# (unknown) or UN; EU has a currency but is not a country. Babel types the codes str | int | None;
# all are str, which the isinstance tells mypy.
_COUNTRIES = frozenset(
    code
    for code in Locale("en").territories
    if isinstance(code, str)
    and len(code) == 2
    and code.isalpha()
    and code != "EU"
    and get_territory_currencies(code)
)


def _vat_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return vat.validate(value)
    except VatError as error:
        raise ValueError(f"not a valid EU VAT number: {error}") from None


def _locale_name(value: str) -> str:
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"{value!r} is not a known locale") from None


def _country_code(value: str) -> str:
    if value.upper() not in _COUNTRIES:
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value.upper()


class Address(BaseModel):
    """The buyer's postal address, as the invoice prints it (art. 226 (5) Directive 2006/112/EC)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    line1: Annotated[str, Field(min_length=1, max_length=200)]
    line2: Annotated[str | None, Field(max_length=200)] = None
    postal_code: Annotated[str, Field(min_length=1, max_length=20)]
    city: Annotated[str, Field(min_length=1, max_length=100)]
    region: Annotated[str | None, Field(max_length=64)] = None
    country: Annotated[str, Field(description="ISO 3166-1 alpha-2, e.g. DE")]

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return _country_code(value)


Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
# Net days from the issue date; None: the seller's default (invoicing/seller.json).
PaymentTerms = Annotated[int, Field(ge=0, le=365)]
# XRechnung's buyer reference (BT-10): a German public buyer's Leitweg-ID, such as 991-12345-67.
BuyerReference = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z-]*$")]


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=TENANT_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200), NO_CARD_NUMBERS]
    tier: Tier
    currency: Annotated[str, Field(description="ISO 4217 code, e.g. usd")]
    country: Annotated[str, Field(description="ISO 3166-1 alpha-2, e.g. DE")]
    region: Annotated[str | None, Field(max_length=64, description="e.g. a US state: CA")] = None
    vat_id: Annotated[str | None, Field(max_length=32)] = None
    locale: str = "en"
    address: Address | None = None
    email: Email | None = None
    payment_terms_days: PaymentTerms | None = None
    buyer_reference: BuyerReference | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value.upper() not in _CURRENCIES:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return value.lower()

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return _country_code(value)

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, value: str | None) -> str | None:
        return _vat_id(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        return _locale_name(value)


class TenantOut(TenantIn):
    pass


class TenantPatch(BaseModel):
    """The details that may change after registration; a field sent as null is cleared. Tier and
    currency are not here: they change through the tenant's pricing, not its record."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200), NO_CARD_NUMBERS] | None = None
    region: Annotated[str | None, Field(max_length=64)] = None
    vat_id: Annotated[str | None, Field(max_length=32)] = None
    locale: str | None = None
    address: Address | None = None
    email: Email | None = None
    payment_terms_days: PaymentTerms | None = None
    buyer_reference: BuyerReference | None = None

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, value: str | None) -> str | None:
        return _vat_id(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may not be null")
        return _locale_name(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may not be null")
        return value


def _out(tenant: Tenant) -> TenantOut:
    values = {k: getattr(tenant, k) for k in TenantOut.model_fields}
    if values["address"] is not None:
        values["address"] = Address.model_construct(**values["address"])
    return TenantOut.model_construct(**values)


@router.post("/tenants", status_code=201, response_model=TenantOut, summary="Register a tenant")
async def create_tenant(
    request: Request,
    response: Response,
    tenant: TenantIn,
    _: Annotated[Principal, Depends(authorized)],
) -> TenantOut:
    svc = services(request)
    try:
        registered = await register_tenant(svc.engine, svc.cipher, tenant.model_dump())
    except TenantExists:
        raise Problem(
            409,
            "conflict",
            "Tenant exists",
            f"tenant_id: {tenant.tenant_id!r} is registered with other details",
        ) from None
    if not registered.created:
        response.status_code = 200  # the same registration again: idempotent
    return _out(registered.tenant)


@router.get("/tenants/{tenant_id}", response_model=TenantOut, summary="A tenant")
async def get_tenant(
    request: Request,
    tenant_id: str,
    principal: Annotated[Principal, Depends(authorized)],
) -> TenantOut:
    svc = services(request)
    if not principal.may_read_tenant(tenant_id):
        raise Problem(403, "forbidden", "Forbidden", "a tenant token reads only its own tenant")
    found = await find_tenant(svc.engine, svc.cipher, tenant_id)
    if found is None:
        raise Problem(404, "not-found", "No such tenant", f"tenant_id: {tenant_id!r} is not registered")
    return _out(found)


@router.patch("/tenants/{tenant_id}", response_model=TenantOut, summary="Change a tenant's details")
async def update_tenant(
    request: Request,
    tenant_id: str,
    changes: TenantPatch,
    _: Annotated[Principal, Depends(authorized)],
) -> TenantOut:
    svc = services(request)
    changed = await change_tenant(svc.engine, svc.cipher, tenant_id, changes.model_dump(exclude_unset=True))
    if changed is None:
        raise Problem(404, "not-found", "No such tenant", f"tenant_id: {tenant_id!r} is not registered")
    return _out(changed)
