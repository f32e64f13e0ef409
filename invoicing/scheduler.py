"""The automatic invoice run, inside the API deployment: every replica runs one scheduler.

Each tick (every `scheduler_interval_s`), a scheduler:
1. creates the run of the last closed month once its grace period has ended. The database lets
   exactly one such run exist per period, so any number of replicas may try at the same moment;
2. claims one run that nobody is working on (pending: made by the schedule or `POST
   /invoice-runs`; or running with a silent owner) and carries it out on Ray tasks, heartbeating.
A replica that dies mid-run leaves its run to the next claimant after the lease; re-running is
safe because every invoice is unique per tenant and period.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from infra import run_store
from infra.settings import Settings
from invoicing.run import execute_run
from pricing.periods import Period, month_start

log = logging.getLogger(__name__)


def due_period(now: datetime, grace_s: int) -> Period | None:
    """The month that has closed and whose grace period has ended by `now`, if any."""
    this_month = month_start(now)
    if now < this_month + timedelta(seconds=grace_s):
        return None
    last_month = month_start(this_month - timedelta(days=1))
    return Period(last_month, this_month)


class InvoiceScheduler:
    def __init__(self, engine: AsyncEngine, settings: Settings, owner: str | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner or f"scheduler:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    async def tick(self, now: datetime) -> uuid.UUID | None:
        """Schedule what is due and carry out one unclaimed run; the run's id, if one was run."""
        if self.settings.auto_invoice:
            period = due_period(now, self.settings.invoice_grace_s)
            if period is not None:
                async with self.engine.begin() as conn:
                    created = await run_store.create(conn, period, "schedule")
                if created is not None:
                    log.info("scheduled the invoice run of %s: run %s", period, created.run_id)
        async with self.engine.begin() as conn:
            run: Row[Any] | None = await run_store.claim(conn, self.owner, self.settings.run_lease_s)
        if run is None:
            return None
        log.info("%s runs invoice run %s (%s)", self.owner, run.run_id, run.trigger)
        try:
            await execute_run(self.engine, self.settings, run, self.owner)
        except run_store.LostLease:
            log.warning("invoice run %s was taken over by another scheduler", run.run_id)
        run_id: uuid.UUID = run.run_id
        return run_id

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("invoice scheduler tick failed")
            await asyncio.sleep(self.settings.scheduler_interval_s)
