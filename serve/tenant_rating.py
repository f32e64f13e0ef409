"""Rating one tenant for a period from live usage: the step quotes and invoices share."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from actors.live_usage import UsageNotSettled, live_rows
from infra.pricing_store import TenantGenerations
from pricing.catalog import Catalog
from pricing.errors import InvalidSettings, NoPriceInForce
from pricing.meters import METERS
from pricing.periods import Period
from pricing.rating import Rating, rate_period
from pricing.tenant_pricing import TenantPricing
from pricing.usage import HourlyUsage
from serve.problems import Problem
from serve.routes.pricing_support import invalid_field, pricing_cache
from serve.services import Services


async def terms_for(request: Request, tenant: TenantGenerations) -> tuple[Catalog, TenantPricing]:
    cache = pricing_cache(request)
    catalog = await cache.catalog(tenant.catalog)
    try:
        return catalog, await cache.settings(tenant)
    except InvalidSettings as error:  # airgapped without a licence: nothing to price yet
        raise Problem(
            409, "conflict", "Tenant cannot be priced yet", f"{error.field}: {error.message}"
        ) from None


async def live_usage_for(svc: Services, tenant_id: str, period: Period) -> list[HourlyUsage]:
    try:
        rows = await live_rows(
            svc.engine, svc.shard_directory, svc.settings, [tenant_id], period.start, period.end
        )
    except UsageNotSettled:
        raise Problem(
            503, "unavailable", "Usage is settling", "retry shortly", headers={"Retry-After": "1"}
        ) from None
    return [
        HourlyUsage(datetime.fromtimestamp(hour, UTC), **{m.value: q for m, q in zip(METERS, quantities)})
        for _, hour, quantities in rows
    ]


def rate_for(
    usage: list[HourlyUsage], settings: TenantPricing, catalog: Catalog, period: Period, field: str = "month"
) -> Rating:
    try:
        return rate_period(usage, settings, catalog, period)
    except NoPriceInForce as error:
        raise invalid_field(field, str(error)) from None
