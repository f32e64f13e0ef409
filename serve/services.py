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

from actors import usage_store
from actors.live_usage import ShardDirectory
from actors.usage_log import UsageLog
from infra import redis_client
from infra.database import create_engine
from infra.field_encryption import FieldCipher
from infra.keyring_store import field_cipher
from infra.pricing_cache import PricingCache
from infra.settings import Settings
from invoicing.composition import invoice_lines
from invoicing.config import InvoicingConfig
from invoicing.scheduler import InvoiceScheduler
from invoicing.service import Invoicer
from notifications.alert_evaluator import AlertEvaluator
from notifications.context import NotificationContext
from notifications.delivery_worker import DeliveryWorker, WorkerConfig
from payments.context import PaymentContext
from payments.dunning_round import retry_due
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
    payments: PaymentContext  # what the payments use cases are given
    # One per process: the cache keeps a memo, and the invoicer (rating, invoices, documents) reads
    # prices through it, as do the alert evaluator's spend figures.
    pricing_cache: PricingCache
    invoicer: Invoicer
    notifications: NotificationContext  # what the webhook and alert use cases are given
    # Kept current by a background probe so ingest can refuse at once while PostgreSQL is down,
    # rather than fill Redis with usage nobody can store.
    database_up: bool = True
    _probe: asyncio.Task[None] | None = field(default=None, repr=False)
    _scheduler: asyncio.Task[None] | None = field(default=None, repr=False)
    _dunning: asyncio.Task[None] | None = field(default=None, repr=False)
    _notifications: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Services:
        redis = redis_client.connect(
            settings.redis_connection(), socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )
        engine = create_engine(settings.resolved_database_url())
        cipher = field_cipher(settings)
        layout = usage_store.layout_view(engine, settings.redis_prefix, settings.shards)
        shard_directory = ShardDirectory(settings.redis_prefix, layout)
        pricing_cache = PricingCache(engine, redis, settings.redis_prefix)
        return cls(
            settings=settings,
            engine=engine,
            redis=redis,
            usage_log=UsageLog(
                redis, settings.redis_prefix, layout, settings.dedup_window_s, settings.future_skew_s
            ),
            auth=Authenticator(
                settings.resolved_jwt_secret(),
                KeySet(settings.jwt_jwks) if settings.jwt_jwks else None,
                settings.jwt_issuer,
                settings.jwt_audience,
            ),
            shard_directory=shard_directory,
            cipher=cipher,
            payments=PaymentContext.of(engine, settings, cipher),
            pricing_cache=pricing_cache,
            invoicer=Invoicer(engine, pricing_cache, shard_directory, InvoicingConfig.of(settings)),
            notifications=NotificationContext(
                engine,
                cipher,
                settings.webhook_allow_private,
                settings.webhook_secret_grace_s,
                settings.webhook_retry_window_s,
            ),
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
        self._start_notifications(loop, evaluate_alerts=ray.is_initialized())

    def _start_notifications(self, loop: asyncio.AbstractEventLoop, evaluate_alerts: bool) -> None:
        """Outbound webhooks and alerts (issue 17): every replica sends due deliveries (claimed with
        SKIP LOCKED under a lease) and, inside Ray (live usage comes from the shard actors),
        evaluates the alerts."""
        worker = DeliveryWorker(self.engine, self.cipher, WorkerConfig.of(self.settings))
        self._notifications.append(loop.create_task(worker.run_forever()))
        if evaluate_alerts:
            self._notifications.append(loop.create_task(self.alert_evaluator().run_forever()))

    def alert_evaluator(self) -> AlertEvaluator:
        spend = InvoiceSpend(self.invoicer, self.pricing_cache)
        return AlertEvaluator(self.engine, spend, self.settings.fx_source, self.settings.notifications_interval_s)

    async def redis_durability(self) -> dict[str, str]:
        """What ingest's promises need of Redis: an fsync'd AOF, and no eviction (an evicted
        dedup key counts a retry twice; an evicted stream loses usage)."""
        config = await self.redis.config_get("appendonly") | await self.redis.config_get("appendfsync")
        config |= await self.redis.config_get("maxmemory-policy")
        return {_text(key): _text(value) for key, value in config.items()}

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
        for task in (self._probe, self._scheduler, self._dunning, *self._notifications):
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
                await retry_due(self.payments, datetime.now(UTC))
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
    found: Services = request.app.state.services  # set by the app's lifespan (serve/app.py)
    return found


def _text(reply: object) -> str:
    """A CONFIG GET key or value: bytes unless the client decodes replies."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class InvoiceSpend:
    """notifications' `SpendRating` from invoicing: the quote's rating and the invoice's lines
    (notifications does not import invoicing, which records outbox events through it)."""

    def __init__(self, invoicer: Invoicer, cache: PricingCache) -> None:
        self.rate_many, self.catalog, self.invoice_lines = invoicer.rate_many, cache.catalog, invoice_lines
