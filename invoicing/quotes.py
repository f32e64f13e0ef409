"""Quotes: a tenant's charges for a month so far, rated from live usage (a dry-run invoice).

The month is rated as its invoice would be if it closed now: usage so far (including what the
shard actors have not stored yet), the full monthly terms, then the tenant's credits as they
would apply, drawn without writing anything. Before tax."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from infra import pricing_store
from invoicing.service import Invoicer
from pricing.credits import CreditLedger
from pricing.money import Money
from pricing.periods import Period
from pricing.rating import Rating
from pricing.tenant_pricing import TenantPricing


@dataclass(frozen=True, slots=True)
class Quote:
    tenant_id: str
    settings: TenantPricing  # the terms rated under
    rating: Rating
    as_of: datetime
    credit_balance: Money  # in the ledger's currency, now
    credits_applied: Money  # what the credits would cover (zero in another currency)
    amount_due: Money
    catalog_revision: int
    pricing_revision: int  # of the tenant's terms; 0 while never set


async def quote(invoicer: Invoicer, tenant_id: str, month: Period, now: datetime) -> Quote:
    """Raises what `Invoicer.rate` raises (TenantNotFound, the pricing errors, UsageNotSettled)."""
    rated = await invoicer.rate(tenant_id, month)
    tenant = rated.generations
    async with invoicer.engine.connect() as conn:
        ledger = await pricing_store.load_ledger(conn, tenant_id, tenant.currency)
    subtotal = rated.rating.subtotal
    applied = _credits_applied(ledger, subtotal, now)
    due = subtotal - applied if applied.currency == subtotal.currency else subtotal
    return Quote(
        tenant_id=tenant.tenant_id,
        settings=rated.settings,
        rating=rated.rating,
        as_of=now,
        credit_balance=ledger.balance(now),
        credits_applied=applied,
        amount_due=max(due, Money.zero(due.currency)),
        catalog_revision=tenant.catalog.revision,
        pricing_revision=0 if tenant.settings is None else tenant.settings.revision,
    )


def _credits_applied(ledger: CreditLedger, subtotal: Money, now: datetime) -> Money:
    """What the credits would cover, drawn in the ledger's order without writing anything. Credits
    in another currency than the charges wait for the invoice's FX conversion."""
    if ledger.currency != subtotal.currency or subtotal.minor_units <= 0:
        return Money.zero(ledger.currency)
    _, drawn = ledger.consume(subtotal, now, reference="quote")
    return drawn
