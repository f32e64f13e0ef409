"""Wakes the delivery workers when an outbox transaction commits, instead of leaving its events
to the next round of the interval (1 s by default: half a second of lag on average, a full one at
worst, for every event).

PostgreSQL's NOTIFY fits the outbox exactly: issued inside the transaction, it is delivered to the
listeners when that transaction commits and never if it rolls back, and the notices of one
transaction on one channel are folded into one, however many events it recorded. It is only a
hint: a worker that was not listening (starting, or its connection lost) still finds the
deliveries on its next round, and retries, whose time comes later, are found by the rounds alone.
Channels are per database, so only the workers of this database hear it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "billing_webhook_outbox"


async def notify(conn: AsyncConnection) -> None:
    """Wake the listening workers once the caller's transaction commits."""
    await conn.execute(select(func.pg_notify(CHANNEL, "")))


class Wakeup:
    """A connection of its own LISTENing on CHANNEL; `wait` returns at the first notice."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.notified = asyncio.Event()
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under _conn

    @property
    def listening(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def listen(self) -> None:
        """Start listening unless already; when PostgreSQL cannot be reached, the worker goes on
        by its interval and this is tried again before its next round."""
        if self.listening:
            return
        await self.close()
        try:
            self._conn = await self.engine.connect()
            self._driver = (await self._conn.get_raw_connection()).driver_connection
            await self._driver.add_listener(CHANNEL, self._notice)
        except Exception as error:  # noqa: BLE001 - any failure only costs the prompt wake-up
            log.info("not listening for outbox commits (%s: %s); delivering by the interval", type(error).__name__, error)
            await self.close()

    async def wait(self, timeout_s: float) -> bool:
        """Until a notice (True, also for one that came since the last wait) or `timeout_s` (False)."""
        try:
            await asyncio.wait_for(self.notified.wait(), timeout_s)
        except TimeoutError:
            return False
        self.notified.clear()  # no await since it was set: a notice after this wakes the next wait
        return True

    async def close(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            try:
                # Invalidated, not returned to the pool: the listener goes with the connection.
                await conn.invalidate()
                await conn.close()
            except Exception:  # a connection already gone is closed enough
                log.debug("closing the outbox listener", exc_info=True)

    def _notice(self, *_: object) -> None:
        self.notified.set()
