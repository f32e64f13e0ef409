"""A month's invoice for a tenant on each of the five tiers, through the API, to the cent.

The month (October 2025) is long closed, so its usage is written to usage_hourly directly, as
the shard actors would have flushed it; the pipeline itself is tested in test_ingest.py. Every
tenant uses the same: 2,000 CPU-hours, 10,000 GB-hours of memory, 50 GB of egress and 120,000
executions. Buyers are in the US and the seller in Germany: no tax, so totals are the charges.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from infra.database import create_engine
from infra.schema import usage_hourly
from pricing.periods import Period
from tests.conftest import auth, register_tenant

OCTOBER = Period.calendar_month(2025, 10)
HOURS = 744  # in October 2025
MONTH = {"cpu_seconds": 7_200_000, "memory_gb_hours": 10_000, "network_gb": 50, "executions": 120_000}
LICENCE = {"licence_id": "lic-1", "starts": "2025-10-15T00:00:00Z"}  # support renews on 1 January

EXPECTED = {
    # 120,000 executions at $0.001 + 50 GB at $0.10
    "zero": ("125.00", {}),
    # 2,000 CPU-hours at $0.05 + 10,000 GB-hours at $0.01
    "shared": ("200.00", {}),
    # $99 + (2,000 - 720) CPU-hours at $0.05 + (10,000 - 2,880) GB-hours at $0.01
    "lite": ("234.20", {}),
    # $200 of usage at shared rates, trued up to the $5,000 monthly minimum
    "enterprise": ("5000.00", {}),
    # the $50,000 licence + support from 15 October to 1 January: 78/365 of $10,000 = 2,136.986..
    "airgapped": ("52136.99", {"licence": LICENCE}),
}


async def _write_usage(url: str, tenant_ids: list[str]) -> None:
    engine = create_engine(url)
    # The month's totals spread over its hours; the first hour takes the remainder, so the
    # month sums to exactly MONTH.
    per_hour = {
        meter: (Decimal(total) / HOURS).quantize(Decimal("0.000001"), "ROUND_DOWN")
        for meter, total in MONTH.items()
    }
    first = {meter: MONTH[meter] - per_hour[meter] * (HOURS - 1) for meter in MONTH}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                usage_hourly.insert(),
                [
                    {
                        "tenant_id": tenant_id,
                        "hour_start": OCTOBER.start + timedelta(hours=h),
                        "storage_gb_hours": 0,
                        **(first if h == 0 else per_hour),
                    }
                    for tenant_id in tenant_ids
                    for h in range(HOURS)
                ],
            )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def tier_tenants(api, tokens, stack) -> dict[str, str]:
    admin = auth(tokens["billing-admin"])
    tenants = {tier: f"tier-{tier}-{uuid.uuid4().hex[:6]}" for tier in EXPECTED}
    for tier, tenant_id in tenants.items():
        register_tenant(api, tokens, tenant_id, region="OR")
        settings = {"tier": tier, "contracts": [], "licence": None, **EXPECTED[tier][1]}
        response = api.put(f"/api/v1/tenants/{tenant_id}/pricing", json=settings, headers=admin)
        assert response.status_code == 200, response.text
    asyncio.run(_write_usage(stack.settings.database_url, list(tenants.values())))
    return tenants


@pytest.mark.parametrize("tier", list(EXPECTED))
def test_a_month_on_each_tier_is_invoiced_to_the_cent(api, tokens, tier_tenants, tier):
    body = {
        "tenant_id": tier_tenants[tier],
        "period_start": OCTOBER.start.isoformat(),
        "period_end": OCTOBER.end.isoformat(),
    }
    response = api.post("/api/v1/invoices", json=body, headers=auth(tokens["finance"]))
    assert response.status_code == 201, response.text
    invoice = response.json()
    total = EXPECTED[tier][0]
    assert (invoice["currency"], invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        "usd",
        total,
        "0.00",
        total,
    )
    assert sum(Decimal(line["amount"]) for line in invoice["lines"]) == Decimal(total)
