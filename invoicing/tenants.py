"""Registering tenants and changing their details. Every detail kept here (name, country, VAT id,
address, locale, payment terms) is there for the invoice that names the tenant as its buyer, so
the tenant's use cases live with invoicing rather than in a package of their own (design.md §8).
Tier and currency change through the tenant's pricing (invoicing/pricing_terms.py), not here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import tenant_store
from infra.field_encryption import FieldCipher
from infra.tenant_store import Tenant

__all__ = ["Registration", "Tenant", "TenantExists", "find_tenant", "register_tenant", "update_tenant"]


class TenantExists(ValueError):
    """The id is registered with other details."""


@dataclass(frozen=True, slots=True)
class Registration:
    tenant: Tenant
    created: bool  # False: the same registration again, answered as before


async def register_tenant(
    engine: AsyncEngine, cipher: FieldCipher, details: Mapping[str, object]
) -> Registration:
    """The tenant with these details, registered once: the same details again are answered as
    before (a retry); other details for a taken id raise TenantExists."""
    values = _stored(details)
    async with engine.begin() as conn:
        made = await tenant_store.insert_tenant(conn, cipher, **values)
        if made is not None:
            return Registration(made, True)
        existing = await tenant_store.find_tenant(conn, cipher, str(values["tenant_id"]))
    if existing is None or {key: getattr(existing, key) for key in values} != values:
        raise TenantExists(str(values["tenant_id"]))
    return Registration(existing, False)


async def find_tenant(engine: AsyncEngine, cipher: FieldCipher, tenant_id: str) -> Tenant | None:
    async with engine.connect() as conn:
        return await tenant_store.find_tenant(conn, cipher, tenant_id)


async def update_tenant(
    engine: AsyncEngine, cipher: FieldCipher, tenant_id: str, changes: Mapping[str, object]
) -> Tenant | None:
    """The tenant after the changes (a None clears the detail), or None when there is no such tenant."""
    async with engine.begin() as conn:
        return await tenant_store.update_tenant(conn, cipher, tenant_id, **_stored(changes))


def _stored(values: Mapping[str, object]) -> dict[str, object]:
    """Column values: an address without its unset optional parts, as it is kept in JSONB."""
    address = values.get("address")
    if isinstance(address, Mapping):
        return {**values, "address": {k: v for k, v in address.items() if v is not None}}
    return dict(values)
