"""A tenant's pricing terms: its tier, and its contracts (enterprise) or licence (airgapped).
Read through the pricing cache; a change bumps the revision the cache keys on, so it counts from
the very next quote. The rules are pricing/tenant_pricing.py; storing them is a use case, kept
with invoicing for the reason invoicing/catalog.py gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import pricing_store
from infra.pricing_cache import PricingCache
from invoicing.errors import TenantNotFound
from pricing.catalog import Catalog
from pricing.errors import InvalidField
from pricing.tenant_pricing import TenantPricing


@dataclass(frozen=True, slots=True)
class TenantTerms:
    tenant_id: str
    tier: str
    settings: TenantPricing | None  # None: never set, so the catalog terms of the registered tier
    revision: int  # of the settings; 0 while never set


async def read_terms(engine: AsyncEngine, cache: PricingCache, tenant_id: str) -> TenantTerms:
    """Raises TenantNotFound."""
    async with engine.connect() as conn:
        tenant = await pricing_store.tenant_generations(conn, tenant_id)
    if tenant is None:
        raise TenantNotFound(tenant_id)
    if tenant.settings is None:
        return TenantTerms(tenant_id, tenant.tier, None, 0)
    settings = await cache.settings(tenant)
    return TenantTerms(tenant_id, settings.tier.value, settings, tenant.settings.revision)


async def write_terms(
    engine: AsyncEngine, cache: PricingCache, tenant_id: str, document: object, actor: str
) -> TenantTerms:
    """Store the terms `document` (unchanged terms keep their revision). Raises TenantNotFound
    and InvalidField (its JSON path)."""
    catalog, _ = await cache.current_catalog()
    async with engine.begin() as conn:
        if await pricing_store.lock_tenant(conn, tenant_id) is None:
            raise TenantNotFound(tenant_id)
        settings = _parse(document, tenant_id, catalog)
        stored = await pricing_store.load_tenant_pricing(conn, tenant_id)
        if stored is not None and stored[0].to_json() == settings.to_json():
            return TenantTerms(tenant_id, settings.tier.value, settings, stored[1].revision)  # no change
        generation = await pricing_store.save_tenant_pricing(conn, settings, actor)
    return TenantTerms(tenant_id, settings.tier.value, settings, generation.revision)


def _parse(document: object, tenant_id: str, catalog: Catalog) -> TenantPricing:
    if not isinstance(document, Mapping):
        raise InvalidField("body", "must be a JSON object")
    terms: Mapping[str, Any] = document
    if terms.get("tenant_id", tenant_id) != tenant_id:
        raise InvalidField("tenant_id", "must be the tenant of the URL, or left out")
    parsed = TenantPricing.from_json({**terms, "tenant_id": tenant_id})
    # Rating refuses a contract price in another currency than the catalog's; say so now.
    for index, contract in enumerate(parsed.contracts):
        for meter, price in contract.rates.items():
            if price.currency != catalog.currency:
                raise InvalidField(
                    f"contracts[{index}].rates.{meter}.currency",
                    f"must be the catalog's currency, {catalog.currency}",
                )
    return parsed
