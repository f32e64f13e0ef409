"""SQL for pricing: the catalog and its versions, tenant pricing settings, credit ledgers.

Takes and returns `pricing/` domain objects. Every write that changes a cached object (a new
catalog version, new tenant settings) bumps that object's `revision` in the caller's
transaction; `Generation` is what infra/pricing_cache.py keys on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, Text, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra import audit_store
from infra.database import any_of
from infra.schema import catalog_versions, catalogs, credit_entries, tenant_pricing, tenants
from pricing.catalog import Catalog, CatalogVersion
from pricing.credits import CreditLedger, Debit, Grant, GrantKind, LedgerEntry
from pricing.errors import InvalidSettings
from pricing.json_fields import decimal_json
from pricing.money import Currency, Money
from pricing.tenant_pricing import TenantPricing

# The one catalog migration 0002 seeds; every tier of every tenant is priced from it.
CATALOG = "enis-cloud"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Generation:
    """Which state of a cached object a reader must see: its revision and when it was made."""

    revision: int
    updated_at: datetime

    @property
    def token(self) -> str:
        # The instant as well as the counter: a database recreated under a Redis that still
        # holds the old keys counts revisions from 1 again, but never at the same microsecond.
        return f"{self.revision}.{(self.updated_at - _EPOCH) // timedelta(microseconds=1)}"


@dataclass(frozen=True)
class TenantGenerations:
    """What a read of a tenant's prices must be consistent with, from one cheap query."""

    tenant_id: str
    tier: str
    currency: str
    catalog: Generation
    settings: Generation | None  # None: no settings row; catalog terms of `tier`


def _json_text(document: object) -> object:
    return cast(literal(json.dumps(document), Text), JSONB)


# --- generations -------------------------------------------------------------------------------


async def catalog_generation(conn: AsyncConnection) -> Generation:
    row = (
        await conn.execute(
            select(catalogs.c.revision, catalogs.c.updated_at).where(catalogs.c.name == CATALOG)
        )
    ).one()
    return Generation(row.revision, row.updated_at)


async def tenant_generations(conn: AsyncConnection, tenant_id: str) -> TenantGenerations | None:
    """The tenant's tier and currency with the generations of its settings and the catalog."""
    return (await tenants_generations(conn, [tenant_id])).get(tenant_id)


async def tenants_generations(
    conn: AsyncConnection, tenant_ids: Sequence[str]
) -> dict[str, TenantGenerations]:
    """`tenant_generations` of many tenants in one query; unknown tenants are left out."""
    query = (
        select(
            tenants.c.tenant_id,
            tenants.c.tier,
            tenants.c.currency,
            tenant_pricing.c.revision,
            tenant_pricing.c.updated_at,
            catalogs.c.revision.label("catalog_revision"),
            catalogs.c.updated_at.label("catalog_updated_at"),
        )
        .select_from(tenants.outerjoin(tenant_pricing, tenant_pricing.c.tenant_id == tenants.c.tenant_id))
        .join(catalogs, catalogs.c.name == CATALOG)
        .where(any_of(tenants.c.tenant_id, tenant_ids))
    )
    return {
        row.tenant_id: TenantGenerations(
            row.tenant_id,
            row.tier,
            row.currency,
            Generation(row.catalog_revision, row.catalog_updated_at),
            None if row.revision is None else Generation(row.revision, row.updated_at),
        )
        for row in await conn.execute(query)
    }


# --- catalog -----------------------------------------------------------------------------------


async def load_catalog(conn: AsyncConnection, *, for_update: bool = False) -> tuple[Catalog, Generation]:
    """The catalog with every version. Run it in one snapshot (REPEATABLE READ) or under the
    row lock (`for_update`), so the versions are the ones of the revision returned."""
    head = select(
        catalogs.c.currency,
        cast(catalogs.c.units, Text).label("units"),
        catalogs.c.revision,
        catalogs.c.updated_at,
    ).where(catalogs.c.name == CATALOG)
    row = (await conn.execute(head.with_for_update() if for_update else head)).one()
    versions = await conn.execute(
        select(cast(catalog_versions.c.document, Text))
        .where(catalog_versions.c.catalog == CATALOG)
        .order_by(catalog_versions.c.effective_from)
    )
    document = {
        "catalog": CATALOG,
        "currency": row.currency,
        "units": decimal_json(row.units),
        "versions": [decimal_json(text) for (text,) in versions],
    }
    return Catalog.from_json(document), Generation(row.revision, row.updated_at)


async def add_catalog_version(conn: AsyncConnection, version: CatalogVersion, created_by: str) -> Generation:
    """Append a version and bump the catalog's revision, in the caller's transaction. The caller
    holds the catalog row lock (`load_catalog(for_update=True)`) and has checked the version.
    Audited with the version it takes over from (the one in force at its start), if any."""
    replaced = await _version_in_force(conn, version.effective_from)
    await conn.execute(
        insert(catalog_versions).values(
            catalog=CATALOG,
            version=version.version,
            effective_from=version.effective_from,
            document=_json_text(version.to_json()),
            created_by=created_by,
        )
    )
    generation = await _bump(conn, catalogs, catalogs.c.name == CATALOG)
    await audit_store.record(
        conn,
        created_by,
        "catalog.version_added",
        "catalog",
        CATALOG,
        None,
        {"revision": generation.revision - 1, "version": replaced},
        {"revision": generation.revision, "version": version.to_json()},
    )
    return generation


async def _version_in_force(conn: AsyncConnection, at: datetime) -> object:
    """The stored document of the version in force at `at`, or None."""
    text = await conn.scalar(
        select(cast(catalog_versions.c.document, Text))
        .where(catalog_versions.c.catalog == CATALOG, catalog_versions.c.effective_from <= at)
        .order_by(catalog_versions.c.effective_from.desc())
        .limit(1)
    )
    return None if text is None else decimal_json(text)


async def _bump(conn: AsyncConnection, table: Table, where: ColumnElement[bool]) -> Generation:
    row = (
        await conn.execute(
            update(table)
            .where(where)
            .values(revision=table.c.revision + 1, updated_at=func.clock_timestamp())
            .returning(table.c.revision, table.c.updated_at)
        )
    ).one()
    return Generation(row.revision, row.updated_at)


# --- tenants and their pricing settings --------------------------------------------------------


@dataclass(frozen=True)
class TenantRow:
    tenant_id: str
    tier: str
    currency: str


async def lock_tenant(conn: AsyncConnection, tenant_id: str) -> TenantRow | None:
    """The tenant, locked until the caller's transaction ends: one writer per tenant at a time."""
    return (await lock_tenants(conn, [tenant_id])).get(tenant_id)


async def lock_tenants(conn: AsyncConnection, tenant_ids: Sequence[str]) -> dict[str, TenantRow]:
    """`lock_tenant` for many, taken in tenant id order so two batches never deadlock."""
    rows = await conn.execute(
        select(tenants.c.tenant_id, tenants.c.tier, tenants.c.currency)
        .where(any_of(tenants.c.tenant_id, tenant_ids))
        .order_by(tenants.c.tenant_id)
        .with_for_update(key_share=True)
    )
    return {row.tenant_id: TenantRow(row.tenant_id, row.tier, row.currency) for row in rows}


async def load_tenant_pricing(
    conn: AsyncConnection, tenant_id: str
) -> tuple[TenantPricing, Generation] | None:
    """The stored settings and their generation; None when the tenant has no settings row."""
    row = (
        await conn.execute(
            select(
                cast(tenant_pricing.c.settings, Text).label("settings"),
                tenant_pricing.c.revision,
                tenant_pricing.c.updated_at,
            ).where(tenant_pricing.c.tenant_id == tenant_id)
        )
    ).first()
    if row is None:
        return None
    return TenantPricing.from_json(decimal_json(row.settings)), Generation(row.revision, row.updated_at)


def catalog_terms(tenant_id: str, tier: str) -> TenantPricing:
    """The settings of a tenant without a row: its tier's catalog terms. Raises `InvalidSettings`
    (field `licence`) for an airgapped tenant, which cannot be priced until it has a licence."""
    try:
        return TenantPricing.from_json({"tenant_id": tenant_id, "tier": tier})
    except InvalidSettings as error:
        raise InvalidSettings(
            error.field, f"{error.message}; set it with PUT /tenants/{{id}}/pricing"
        ) from None


async def save_tenant_pricing(conn: AsyncConnection, pricing: TenantPricing, updated_by: str) -> Generation:
    """Store the settings, bump their revision and keep tenants.tier in step, in the caller's
    transaction (which holds `lock_tenant`). Audited with the settings they replace."""
    before = await _settings_state(conn, pricing.tenant_id)
    statement = insert(tenant_pricing).values(
        tenant_id=pricing.tenant_id,
        settings=_json_text(pricing.to_json()),
        revision=1,
        updated_at=func.clock_timestamp(),
        updated_by=updated_by,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={
            "settings": statement.excluded.settings,
            "revision": tenant_pricing.c.revision + 1,
            "updated_at": statement.excluded.updated_at,
            "updated_by": statement.excluded.updated_by,
        },
    )
    row = (
        await conn.execute(statement.returning(tenant_pricing.c.revision, tenant_pricing.c.updated_at))
    ).one()
    await conn.execute(
        update(tenants).where(tenants.c.tenant_id == pricing.tenant_id).values(tier=pricing.tier.value)
    )
    after = {"revision": row.revision, "tier": pricing.tier.value, "settings": pricing.to_json()}
    await audit_store.record(
        conn,
        updated_by,
        "tenant_pricing.changed",
        "tenant",
        pricing.tenant_id,
        pricing.tenant_id,
        before,
        after,
    )
    return Generation(row.revision, row.updated_at)


async def _settings_state(conn: AsyncConnection, tenant_id: str) -> dict[str, object]:
    """A tenant's tier and stored settings (None, with revision 0, when never set)."""
    row = (
        await conn.execute(
            select(
                tenants.c.tier,
                cast(tenant_pricing.c.settings, Text).label("settings"),
                tenant_pricing.c.revision,
            )
            .select_from(tenants.outerjoin(tenant_pricing, tenant_pricing.c.tenant_id == tenants.c.tenant_id))
            .where(tenants.c.tenant_id == tenant_id)
        )
    ).one()
    settings = None if row.settings is None else decimal_json(row.settings)
    return {"revision": row.revision or 0, "tier": row.tier, "settings": settings}


# --- credits -----------------------------------------------------------------------------------


async def load_ledger(conn: AsyncConnection, tenant_id: str, currency: str) -> CreditLedger:
    """The tenant's ledger in `currency` (its billing currency), rebuilt and checked entry by entry."""
    return (await load_ledgers(conn, {tenant_id: currency}))[tenant_id]


async def load_ledgers(conn: AsyncConnection, currencies: Mapping[str, str]) -> dict[str, CreditLedger]:
    """`load_ledger` of many tenants (tenant id -> billing currency) in one query."""
    rows = await conn.execute(
        select(credit_entries)
        .where(any_of(credit_entries.c.tenant_id, currencies))
        .order_by(credit_entries.c.entry_id)
    )
    entries: dict[str, list[tuple[str, LedgerEntry]]] = {tenant_id: [] for tenant_id in currencies}
    for row in rows:
        entries[row.tenant_id].append((f"entries[{row.entry_id}]", _entry(row)))
    return {
        tenant_id: CreditLedger(tenant_id, Currency.of(currency)).extended(entries[tenant_id])
        for tenant_id, currency in currencies.items()
    }


def _entry(row: Row[*tuple[Any, ...]]) -> LedgerEntry:
    if row.entry_type == "debit":
        return Debit(row.grant_id, row.at, row.amount_minor, row.reference)
    return Grant(row.grant_id, row.at, row.amount_minor, GrantKind(row.kind), row.priority, row.expires_at)


async def append_ledger_entry(
    conn: AsyncConnection, ledger: CreditLedger, entry: LedgerEntry, created_by: str
) -> CreditLedger:
    """Check `entry` against the ledger (under `lock_tenant`) and store it; the longer ledger.
    A grant is audited with the balance before and after; a debit is part of the invoice that
    draws it, and is audited with that invoice's finalization (its `credits_applied`)."""
    longer = ledger.append(entry)
    values: dict[str, object] = {
        "tenant_id": ledger.tenant_id,
        "grant_id": entry.grant_id,
        "at": entry.at,
        "amount_minor": entry.amount,
        "currency": ledger.currency.code,
        "created_by": created_by,
    }
    if isinstance(entry, Grant):
        values.update(
            entry_type="grant", kind=entry.kind.value, priority=entry.priority, expires_at=entry.expires_at
        )
    else:
        values.update(entry_type="debit", reference=entry.reference)
    await conn.execute(insert(credit_entries).values(**values))
    if isinstance(entry, Grant):
        await _audit_grant(conn, ledger, longer, entry, created_by)
    return longer


async def _audit_grant(
    conn: AsyncConnection, ledger: CreditLedger, longer: CreditLedger, grant: Grant, actor: str
) -> None:
    currency = ledger.currency
    after = {
        "balance": longer.balance(grant.at),
        "grant_id": grant.grant_id,
        "amount": Money(grant.amount, currency),
        "currency": currency.code,
        "kind": grant.kind.value,
        "priority": grant.priority,
        "expires_at": grant.expires_at,
    }
    before = {"balance": ledger.balance(grant.at), "currency": currency.code}
    await audit_store.record(
        conn, actor, "credit.granted", "credit_grant", grant.grant_id, ledger.tenant_id, before, after
    )
