"""Sends the outbox: a loop in every API replica, beside the invoice scheduler and the dunning
rounds, claiming due deliveries from PostgreSQL: at once when an outbox transaction commits
(notifications/wakeup.py), else every interval (retries, and commits it did not hear of).

Why a loop in each replica and not a Ray actor: a delivery is an HTTP call, which an event loop
waits on by the hundred; the claims (FOR UPDATE SKIP LOCKED, under a lease) already let any number
of replicas share the work, so there is no singleton to place, supervise and restart, the
capacity grows with the replicas, and the API runs it the same way under plain uvicorn.

At least once: a delivery stays pending until an attempt's outcome is committed. A worker that dies
between its POST and that commit leaves the delivery leased; when the lease runs out another
worker sends it again, with the same `webhook-id` (the event's id), which receivers deduplicate by.

Each attempt: the endpoint's host is resolved and every address checked (notifications/targets.py)
then the request goes to the checked address (Host header and TLS SNI carry the name), so a DNS
answer that changes between the check and the connection cannot redirect it. Timeouts 5 s to
connect, 10 s in all; redirects are not followed; at most 1 KiB of the answer is read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra import webhook_store
from infra.field_encryption import FieldCipher
from infra.settings import Settings
from notifications import metrics, signing
from notifications.retries import next_attempt
from notifications.targets import Target, TargetRefused, check_address, parse_url
from notifications.wakeup import Wakeup

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 10.0
ANSWER_EXCERPT_BYTES = 1024
BATCH = 32


@dataclass(frozen=True)
class WorkerConfig:
    """What the worker needs of Settings, and nothing else."""

    allow_private: bool
    retry_base_s: float
    retry_max_s: float
    retry_window_s: float
    lease_s: float
    interval_s: float

    @classmethod
    def of(cls, settings: Settings) -> WorkerConfig:
        return cls(
            settings.webhook_allow_private,
            settings.webhook_retry_base_s,
            settings.webhook_retry_max_s,
            settings.webhook_retry_window_s,
            settings.webhook_lease_s,
            settings.notifications_interval_s,
        )


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryWorker:
    def __init__(
        self, engine: AsyncEngine, cipher: FieldCipher, config: WorkerConfig, owner: str | None = None
    ) -> None:
        self.engine, self.cipher, self.config = engine, cipher, config
        self.owner = owner or f"webhooks:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(TOTAL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            trust_env=False,  # no proxy from the environment between us and the checked address
            limits=httpx.Limits(max_connections=BATCH, max_keepalive_connections=BATCH),
        )

    async def tick(self) -> int:
        """Claim the due deliveries (up to a batch), attempt each once, concurrently, and record
        the outcomes in one transaction; how many were claimed."""
        async with self.engine.begin() as conn:
            claimed = await webhook_store.claim_due(conn, self.owner, self.config.lease_s, BATCH)
            lag = await webhook_store.outbox_lag_s(conn)
        metrics.set_gauge(metrics.outbox_lag, lag)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(row) for row in claimed))
        async with self.engine.begin() as conn:
            await webhook_store.lock_endpoints(conn, {row.endpoint_id for row in claimed})
            for row, outcome in zip(claimed, outcomes, strict=True):
                await self._record(conn, row, outcome)
        return len(claimed)

    async def run_forever(self) -> None:
        wakeup = Wakeup(self.engine)
        try:
            while True:
                await wakeup.listen()  # before the round, so a commit during it wakes the next
                claimed = 0
                try:
                    claimed = await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("webhook delivery round failed")
                if claimed < BATCH:  # a full batch means more are waiting: go on at once
                    await wakeup.wait(self.config.interval_s)  # or a commit of new events
        finally:
            await wakeup.close()
            await self.client.aclose()

    async def _send(self, row: Any) -> Outcome | None:
        """One attempt of a claimed delivery; None when its endpoint is no longer enabled."""
        if not row.enabled:
            return None
        secrets = webhook_store.signing_secrets(self.cipher, row, row.now)
        return await self.attempt(row.url, row.event_id, orjson.dumps(row.body), secrets)

    async def _record(self, conn: AsyncConnection, row: Any, outcome: Outcome | None) -> None:
        if outcome is None:
            await webhook_store.cancel(conn, row.delivery_id, self.owner, "endpoint disabled")
            metrics.count(metrics.deliveries, tags={"outcome": "cancelled"})
            return
        give_up_at = row.give_up_at or row.created_at + timedelta(seconds=self.config.retry_window_s)
        retry_at = None
        if not outcome.delivered:
            retry_at = next_attempt(
                row.now, row.attempts + 1, give_up_at, self.config.retry_base_s, self.config.retry_max_s
            )
        held = await webhook_store.record_attempt(
            conn,
            row.delivery_id,
            self.owner,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            delivered=outcome.delivered,
            next_attempt_at=retry_at,
        )
        if not held:
            log.info("delivery %s was taken over by another worker while %s sent it", row.delivery_id, self.owner)
        if outcome.delivered:
            await webhook_store.endpoint_succeeded(conn, row.endpoint_id)
        elif await webhook_store.endpoint_failed(
            conn,
            row.endpoint_id,
            self.config.retry_window_s,
            outcome.error or f"HTTP {outcome.status_code}",
            gave_up=row.delivery_id if retry_at is None and held else None,
        ):
            metrics.count(metrics.endpoints_disabled)
            log.warning("webhook endpoint %s disabled: failing for the whole retry window", row.endpoint_id)
        result = "delivered" if outcome.delivered else ("retry" if retry_at is not None else "failed")
        metrics.count(metrics.deliveries, tags={"outcome": result})
        metrics.observe(metrics.delivery_seconds, outcome.duration_ms / 1000)

    async def attempt(self, url: str, event_id: str, body: bytes, secrets: list[str]) -> Outcome:
        """One POST of the body to the url, signed now; never raises for the receiver's faults."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            target = parse_url(url)
            address = await self._checked_address(target)
            request = self._request(target, address, event_id, body, secrets)
            async with asyncio.timeout(TOTAL_TIMEOUT_S):
                response = await self.client.send(request, stream=True)
                try:
                    excerpt = b""
                    async for chunk in response.aiter_bytes():
                        excerpt += chunk
                        if len(excerpt) >= ANSWER_EXCERPT_BYTES:
                            break
                finally:
                    await response.aclose()
        except TargetRefused as error:
            return Outcome(False, None, f"refused: {error.message}", took())
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, None, "timed out", took())
        except (httpx.HTTPError, OSError) as error:
            return Outcome(False, None, f"{type(error).__name__}: {error}"[:300], took())
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True, status, None, took())
        answer = excerpt[:ANSWER_EXCERPT_BYTES].decode("utf-8", "replace")
        return Outcome(False, status, f"HTTP {status}: {answer}"[:300], took())

    async def _checked_address(self, target: Target) -> str:
        literal = target.literal()
        if literal is not None:
            check_address(literal, self.config.allow_private)
            return str(literal)
        infos = await asyncio.get_running_loop().getaddrinfo(
            target.host, target.port, type=socket.SOCK_STREAM
        )
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise OSError(f"{target.host} does not resolve")
        for address in addresses:  # every answer, so a mixed answer cannot slip a private one in
            check_address(address, self.config.allow_private)
        return str(addresses[0])

    def _request(self, target: Target, address: str, event_id: str, body: bytes, secrets: list[str]) -> httpx.Request:
        at = datetime.now().astimezone()
        headers = signing.headers(event_id, at, body, secrets)
        url = httpx.URL(target.url)
        host_header = url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = self.client.build_request(
            "POST", url.copy_with(host=address), content=body, headers=headers | {"host": host_header}
        )
        request.extensions.update(extensions)
        return request
