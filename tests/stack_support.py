"""Helpers for tests that drive the session's stack: SQL on its database, the environment of a
CLI process joining it, and a finalized invoice to pay, correct or audit."""

from __future__ import annotations

import asyncio
import os
import uuid

import ray
from sqlalchemy import text

from infra.database import create_engine
from tests.conftest import auth, register_tenant

MAY = ("2025-05-01T00:00:00Z", "2025-06-01T00:00:00Z")  # a lite month: $99, no usage needed


def sql(settings, query: str, **params) -> list:
    """Run one statement in its own transaction; its rows, if it returns any."""

    async def run() -> list:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(text(query), params)
                return result.all() if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cli_env(settings) -> dict[str, str]:
    """The environment of a `billing` process joining this session's stack and Ray cluster."""
    return {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_REDIS_PREFIX": settings.redis_prefix,
        "BILLING_SHARDS": str(settings.shards),
        "BILLING_DATA_DIR": str(settings.data_dir),
    }


def finalized_lite_invoice(api, tokens, prefix: str, **details: str) -> dict:
    """A new lite tenant's finalized May 2025 invoice (99.00 in its currency, no usage)."""
    tenant_id = register_tenant(api, tokens, f"{prefix}-{uuid.uuid4().hex[:8]}", tier="lite", **details)
    admin = auth(tokens["billing-admin"])
    request = {"tenant_id": tenant_id, "period_start": MAY[0], "period_end": MAY[1]}
    draft = api.post("/api/v1/invoices", json=request, headers=admin).json()
    invoice = api.post(f"/api/v1/invoices/{draft['invoice_id']}/finalize", headers=admin).json()
    assert invoice["status"] == "finalized" and invoice["total"] == "99.00", invoice
    return invoice


def dunning_round(settings, now) -> int:
    """One dunning round as a replica runs it, at `now`; how many payments it retried."""
    from infra.keyring_store import field_cipher
    from payments.context import PaymentContext
    from payments.dunning_round import retry_due

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            return await retry_due(PaymentContext.of(engine, settings, field_cipher(settings)), now)
        finally:
            await engine.dispose()

    return asyncio.run(run())
