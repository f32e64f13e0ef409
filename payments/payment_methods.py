"""Attaching a tenant's payment method: the provider's ids (never card data), kept encrypted."""

from __future__ import annotations

from infra import payment_store, pricing_store
from infra.sealed_columns import CUSTOMER_REF, METHOD_REF
from payments.context import PaymentContext
from payments.errors import PaymentNotFound


async def attach_method(
    ctx: PaymentContext, tenant_id: str, provider: str, method_id: str, customer_id: str | None
) -> None:
    """Keep (or replace) the tenant's method at `provider`: its method id and customer id."""
    name = ctx.providers.provider(provider).name
    customer = None if customer_id is None else ctx.cipher.encrypt(CUSTOMER_REF.field, customer_id)
    async with ctx.engine.begin() as conn:
        if await pricing_store.lock_tenant(conn, tenant_id) is None:
            raise PaymentNotFound(f"no tenant {tenant_id}")
        method = ctx.cipher.encrypt(METHOD_REF.field, method_id)
        await payment_store.save_method(conn, tenant_id, name, customer, method)
