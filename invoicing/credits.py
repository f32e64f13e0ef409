"""The credit ledger's use cases: grant credit, read a tenant's ledger, and `record_entries`, the
one writer of the ledger, which granting, invoice finalization (invoicing/service.py, debits)
and bank reconciliation (payments/reconciliation.py, overpayments) all go through.

A ledger is kept in the tenant's billing currency, the currency it prepays in; a grant's amount
arrives in major units and is stored in minor units."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra import pricing_store
from invoicing.errors import AlreadyExists, TenantNotFound
from pricing.credits import CreditLedger, Grant, GrantKind, LedgerEntry
from pricing.errors import InvalidField
from pricing.money import Money


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """A grant as asked for; checked against the tenant's ledger by `grant_credit`."""

    amount: Decimal  # major units of the ledger's currency
    kind: GrantKind
    priority: int = 0
    grant_id: str | None = None  # None: a new id (no retry protection)
    currency: str | None = None  # None: the ledger's; another is refused
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CreditGranted:
    ledger: CreditLedger  # with the grant
    grant: Grant
    created: bool  # False: the same grant again (a retry), answered as before


async def record_entries(
    conn: AsyncConnection, ledger: CreditLedger, entries: Iterable[LedgerEntry], actor: str
) -> CreditLedger:
    """The one writer of the credit ledger: each entry checked against the ledger and stored, in
    the caller's transaction, which must hold the tenant's lock (`pricing_store.lock_tenant(s)`)
    so that two writers never draw on the same balance. The longer ledger."""
    for entry in entries:
        ledger = await pricing_store.append_ledger_entry(conn, ledger, entry, actor)
    return ledger


async def grant_credit(engine: AsyncEngine, tenant_id: str, asked: GrantRequest, actor: str) -> CreditGranted:
    """Grant credit once per grant id. Raises TenantNotFound, InvalidField (currency, amount,
    expires_at) and AlreadyExists (the grant id was granted with other terms)."""
    async with engine.begin() as conn:
        tenant = await pricing_store.lock_tenant(conn, tenant_id)  # one ledger writer at a time
        if tenant is None:
            raise TenantNotFound(tenant_id)
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
        grant = _grant(asked, ledger)
        stored = next(
            (e for e in ledger.entries if isinstance(e, Grant) and e.grant_id == grant.grant_id), None
        )
        if stored is not None:
            if _terms(stored) != _terms(grant):
                raise AlreadyExists(f"grant_id: {grant.grant_id!r} was granted with other terms")
            return CreditGranted(ledger, stored, created=False)
        ledger = await record_entries(conn, ledger, [grant], actor)
    return CreditGranted(ledger, grant, created=True)


async def credit_ledger(engine: AsyncEngine, tenant_id: str) -> CreditLedger:
    """The tenant's ledger, every entry. Raises TenantNotFound."""
    async with engine.connect() as conn:
        tenant = await pricing_store.tenant_generations(conn, tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return await pricing_store.load_ledger(conn, tenant_id, tenant.currency)


def _grant(asked: GrantRequest, ledger: CreditLedger) -> Grant:
    currency = ledger.currency
    if asked.currency is not None and asked.currency.lower() != currency.code:
        raise InvalidField("currency", f"must be the tenant's billing currency, {currency}")
    minor = Money.from_major(asked.amount, currency).minor_units
    if minor != minor.to_integral_value() or minor <= 0:
        raise InvalidField(
            "amount", f"must be positive, with at most {currency.digits} decimal places in {currency}"
        )
    # Never before the last entry, even if another API process's clock runs ahead of ours.
    at = max([datetime.now(UTC), *(entry.at for entry in ledger.entries[-1:])])
    if asked.expires_at is not None and asked.expires_at <= at:
        raise InvalidField("expires_at", "must be in the future")
    return Grant(
        grant_id=asked.grant_id or f"grant-{uuid.uuid4().hex[:16]}",
        at=at,
        amount=minor.to_integral_value(),
        kind=asked.kind,
        priority=asked.priority,
        expires_at=None if asked.expires_at is None else asked.expires_at.astimezone(UTC),
    )


def _terms(grant: Grant) -> tuple[object, ...]:
    """What a retry must repeat: everything but the id and the instant it was granted at."""
    return (grant.amount, grant.kind, grant.priority, grant.expires_at)
