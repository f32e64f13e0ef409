"""What a request handler needs, built once per API process in the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import ray
from fastapi import Request
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.live_usage import ShardDirectory
from actors.usage_log import UsageLog
from infra import usage_store
from infra.database import create_engine
from infra.field_encryption import FieldCipher
from infra.keyring_store import field_cipher
from infra.settings import Settings
from invoicing.scheduler import InvoiceScheduler
from payments.providers import Providers
from payments.service import Payments
from serve.auth import Authenticator, KeySet

log = logging.getLogger(__name__)
PROBE_INTERVAL_S = 1.0


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    usage_log: UsageLog
    auth: Authenticator
    shard_directory: ShardDirectory
    cipher: FieldCipher  # for sensitive columns (tax ids, provider ids, payer details)
    payments: Payments
    # Kept current by a background probe so ingest can refuse at once while PostgreSQL is down,
    # rather than fill Redis with usage nobody can store.
    database_up: bool = True
    _probe: asyncio.Task | None = field(default=None, repr=False)
    _scheduler: asyncio.Task | None = field(default=None, repr=False)
    _dunning: asyncio.Task | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Services:
        redis = Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        engine = create_engine(settings.database_url)
        cipher = field_cipher(settings)
        layout = usage_store.layout_view(engine, settings.redis_prefix, settings.shards)
        return cls(
            settings=settings,
            engine=engine,
            redis=redis,
            usage_log=UsageLog(
                redis, settings.redis_prefix, layout, settings.dedup_window_s, settings.future_skew_s
            ),
            auth=Authenticator(
                settings.jwt_secret,
                KeySet(settings.jwt_jwks) if settings.jwt_jwks else None,
                settings.jwt_issuer,
                settings.jwt_audience,
            ),
            shard_directory=ShardDirectory(settings.redis_prefix, layout),
            cipher=cipher,
            payments=Payments(engine, Providers(settings), cipher, settings),
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._probe = loop.create_task(self._probe_database())
        loop.create_task(self._warn_if_redis_not_durable())
        # Invoice runs fan out as Ray tasks, so only a replica inside Ray schedules them (the API
        # under plain uvicorn, for benchmarks, does not).
        if ray.is_initialized():
            self._scheduler = loop.create_task(InvoiceScheduler(self.engine, self.settings).run_forever())
        self._dunning = loop.create_task(self._retry_failed_payments())

    async def redis_durability(self) -> dict[str, str]:
        """What ingest's promises need of Redis: an fsync'd AOF, and no eviction (an evicted
        dedup key counts a retry twice; an evicted stream loses usage)."""
        config = await self.redis.config_get("appendonly") | await self.redis.config_get("appendfsync")
        config |= await self.redis.config_get("maxmemory-policy")
        return {
            key.decode() if isinstance(key, bytes) else key: value.decode()
            if isinstance(value, bytes)
            else value
            for key, value in config.items()
        }

    async def _warn_if_redis_not_durable(self) -> None:
        try:
            config = await self.redis_durability()
        except Exception:  # noqa: BLE001 - CONFIG may be disabled on managed Redis; nothing to say
            return
        if config != {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}:
            log.warning(
                "Redis is not configured for durable ingest (want appendonly yes, appendfsync always, "
                "maxmemory-policy noeviction): %s",
                config,
            )

    async def close(self) -> None:
        for task in (self._probe, self._scheduler, self._dunning):
            if task:
                task.cancel()
        await self.redis.aclose()
        await self.engine.dispose()

    async def database_answers(self) -> bool:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not reachable now"
            return False

    async def redis_answers(self) -> bool:
        try:
            async with asyncio.timeout(2):
                return bool(await self.redis.ping())
        except Exception:  # noqa: BLE001
            return False

    async def _retry_failed_payments(self) -> None:
        """Dunning: every replica retries due payments (rows are claimed with SKIP LOCKED)."""
        while True:
            try:
                await self.payments.retry_due(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dunning round failed")
            await asyncio.sleep(self.settings.scheduler_interval_s)

    async def _probe_database(self) -> None:
        while True:
            up = await self.database_answers()
            if up != self.database_up:
                log.warning("PostgreSQL is %s", "reachable again" if up else "unreachable")
            self.database_up = up
            if up:
                await self._follow_layout()
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def _follow_layout(self) -> None:
        # Writers learn of a new shard count when a gate refuses them; live reads learn it here.
        try:
            await self.usage_log.layout.refresh()
        except Exception:  # the next round tries again
            log.warning("reading the shard layout failed", exc_info=True)


def services(request: Request) -> Services:
    return request.app.state.services
