"""SQL for tenants. The VAT id (a tax id, so sensitive) is stored encrypted with the field cipher
(AES-256-GCM, tagged with its key version) and decrypted only here, for the code that needs it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.database import any_of
from infra.field_encryption import FieldCipher, is_token
from infra.schema import tenants
from infra.sealed_columns import VAT_ID

VAT_FIELD = VAT_ID.field  # the associated data of its ciphertexts


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    tier: str
    currency: str
    country: str
    region: str | None
    vat_id: str | None  # in clear
    locale: str
    created_at: datetime
    address: dict[str, str] | None = None  # {line1, line2?, postal_code, city, region?, country}
    email: str | None = None
    payment_terms_days: int | None = None  # None: the seller's default
    buyer_reference: str | None = None  # a German public buyer's Leitweg-ID (XRechnung BT-10)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _tenant(row: Row[*tuple[Any, ...]], cipher: FieldCipher) -> Tenant:
    values = dict(row._mapping)
    stored = values["vat_id"]
    # Rows written before encryption hold the id in clear until `billing keys rotate` seals them.
    values["vat_id"] = cipher.decrypt(VAT_FIELD, stored) if stored and is_token(stored) else stored
    return Tenant(**values)


async def insert_tenant(conn: AsyncConnection, cipher: FieldCipher, **values: object) -> Tenant | None:
    """The new tenant, or None when the id is taken."""
    vat_id = values.get("vat_id")
    sealed = values | {"vat_id": None if vat_id is None else cipher.encrypt(VAT_FIELD, str(vat_id))}
    statement = insert(tenants).values(**sealed).on_conflict_do_nothing().returning(*tenants.c)
    row = (await conn.execute(statement)).first()
    return None if row is None else _tenant(row, cipher)


async def update_tenant(
    conn: AsyncConnection, cipher: FieldCipher, tenant_id: str, **changes: object
) -> Tenant | None:
    """Change some of a tenant's details (a None sets the column to NULL); the tenant after, or
    None when there is no such tenant."""
    if "vat_id" in changes and changes["vat_id"] is not None:
        changes["vat_id"] = cipher.encrypt(VAT_FIELD, str(changes["vat_id"]))
    if not changes:
        return await find_tenant(conn, cipher, tenant_id)
    statement = update(tenants).where(tenants.c.tenant_id == tenant_id).values(**changes)
    row = (await conn.execute(statement.returning(*tenants.c))).first()
    return None if row is None else _tenant(row, cipher)


async def find_tenants(
    conn: AsyncConnection, cipher: FieldCipher, tenant_ids: Sequence[str]
) -> dict[str, Tenant]:
    rows = await conn.execute(select(tenants).where(any_of(tenants.c.tenant_id, tenant_ids)))
    return {row.tenant_id: _tenant(row, cipher) for row in rows}


async def find_tenant(conn: AsyncConnection, cipher: FieldCipher, tenant_id: str) -> Tenant | None:
    return (await find_tenants(conn, cipher, [tenant_id])).get(tenant_id)


async def tiers_of(conn: AsyncConnection, tenant_ids: Iterable[str]) -> dict[str, str]:
    # One array parameter however many ids (an IN list had to stay within asyncpg's 32,767 binds).
    result = await conn.execute(
        select(tenants.c.tenant_id, tenants.c.tier).where(any_of(tenants.c.tenant_id, tenant_ids))
    )
    return {row.tenant_id: row.tier for row in result}
