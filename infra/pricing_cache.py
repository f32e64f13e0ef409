"""The hot pricing data (the catalog, each tenant's settings) read through a cache in Redis.

Why keys carry a generation instead of being deleted on change: a stale price must never be
used, and "the writer deletes the key after commit" leaves that to timing and luck — a reader
that loaded the old row just before the commit can put it back just after the delete, and a
delete lost to a Redis hiccup leaves the old price in place until the key expires. Here every
change bumps the object's `revision` in PostgreSQL in the same transaction as the change
(infra/pricing_store.py), and a reader

1. asks PostgreSQL for the current generation (revision and instant) — one primary-key read
   that quotes join with the tenant lookup they need anyway (`tenant_generations`);
2. reads the key named after that generation, from a per-process memo, then Redis;
3. on a miss loads the object and its generation from PostgreSQL in one snapshot and stores it
   under the key of the generation it actually loaded.

A key's content therefore never changes, so nothing has to be invalidated: once a change has
committed, no reader asks for the old key again, whatever Redis held or missed. Old keys simply
expire. Redis being down costs speed, not correctness: readers fall back to PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import pricing_store
from infra.pricing_store import Generation, TenantGenerations
from pricing.catalog import Catalog
from pricing.json_fields import decimal_json
from pricing.tenant_pricing import TenantPricing

log = logging.getLogger(__name__)
T = TypeVar("T")
# Old generations are never read again; a day is long enough to serve a hot key many times.
TTL_S = 86_400
MEMO_SIZE = 512


class PricingCache:
    def __init__(self, engine: AsyncEngine, redis: Redis, prefix: str) -> None:
        self._engine, self._redis, self._prefix = engine, redis, prefix
        # Loads read the catalog row and its versions in one snapshot.
        self._snapshots = engine.execution_options(isolation_level="REPEATABLE READ")
        # Parsed objects by key: safe for the same reason Redis is, since a key never changes.
        self._memo: OrderedDict[str, object] = OrderedDict()

    def catalog_key(self, generation: Generation) -> str:
        return f"{self._prefix}:pricing:catalog:{pricing_store.CATALOG}:{generation.token}"

    def settings_key(self, tenant_id: str, generation: Generation) -> str:
        return f"{self._prefix}:pricing:tenant:{tenant_id}:{generation.token}"

    async def current_catalog(self) -> tuple[Catalog, Generation]:
        async with self._engine.connect() as conn:
            generation = await pricing_store.catalog_generation(conn)
        return await self.catalog(generation), generation

    async def catalog(self, generation: Generation) -> Catalog:
        async def load() -> tuple[str, str]:
            async with self._snapshots.connect() as conn:
                catalog, loaded = await pricing_store.load_catalog(conn)
            return self.catalog_key(loaded), json.dumps(catalog.to_json())

        return await self._read_through(self.catalog_key(generation), load, _catalog)

    async def settings(self, tenant: TenantGenerations) -> TenantPricing:
        """The tenant's pricing settings as of `tenant` (from `pricing_store.tenant_generations`)."""
        if tenant.settings is None:  # nothing stored: built from the tier the query just read
            return pricing_store.catalog_terms(tenant.tenant_id, tenant.tier)

        async def load() -> tuple[str, str]:
            async with self._engine.connect() as conn:
                stored = await pricing_store.load_tenant_pricing(conn, tenant.tenant_id)
            assert stored is not None  # settings rows are never deleted
            settings, loaded = stored
            return self.settings_key(tenant.tenant_id, loaded), json.dumps(settings.to_json())

        return await self._read_through(self.settings_key(tenant.tenant_id, tenant.settings), load, _settings)

    async def _read_through(
        self, key: str, load: Callable[[], Awaitable[tuple[str, str]]], parse: Callable[[str], T]
    ) -> T:
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]  # type: ignore[return-value]
        text = await self._get(key)
        if text is None:
            # What we load may be newer than `key` if a change committed meanwhile: it is stored
            # under its own generation, and using it is never stale.
            key, text = await load()
            await self._set(key, text)
        value = parse(text)
        self._remember(key, value)
        return value

    def _remember(self, key: str, value: object) -> None:
        self._memo[key] = value
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    async def _get(self, key: str) -> str | None:
        try:
            raw = await self._redis.get(key)
        except (RedisError, OSError) as error:
            log.warning("pricing cache read failed, reading PostgreSQL: %s", error)
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _set(self, key: str, text: str) -> None:
        try:
            await self._redis.set(key, text, ex=TTL_S)
        except (RedisError, OSError) as error:
            log.warning("pricing cache write failed: %s", error)


def _catalog(text: str) -> Catalog:
    return Catalog.from_json(decimal_json(text))


def _settings(text: str) -> TenantPricing:
    return TenantPricing.from_json(decimal_json(text))
