"""The delivery worker is woken by an outbox commit (PostgreSQL NOTIFY), not left to its interval:
the commit wakes a listener, a rollback does not, and a worker whose interval is a minute sends an
event committed while it waits long before that minute. Each test on a database of its own, whose
notices no other worker hears."""

from __future__ import annotations

import asyncio

from infra.database import create_engine
from infra.keyring_store import field_cipher
from notifications import endpoints, outbox
from notifications.context import NotificationContext
from notifications.delivery_worker import DeliveryWorker, WorkerConfig
from notifications.records import Caller
from notifications.wakeup import Wakeup
from tests.notifications.support import Receiver

INTERVAL_S = 60.0  # far longer than any wait below: only a wake-up explains a prompt delivery


class RolledBack(Exception):
    pass


async def _endpoint(engine, settings, receiver: Receiver) -> NotificationContext:
    ctx = NotificationContext(engine, field_cipher(settings), True, 60.0, 3600.0)
    made = await endpoints.create_endpoint(ctx, Caller(None), {"url": receiver.url, "event_types": ["*"]})
    receiver.secrets.append(made.secret)
    return ctx


async def _record(engine, tenant_id: str, rollback: bool = False) -> str:
    event_id = ""
    try:
        async with engine.begin() as conn:
            event_id = await outbox.record(conn, "invoice.finalized", tenant_id, {"invoice_id": "i-1"})
            if rollback:
                raise RolledBack
    except RolledBack:
        pass
    return event_id


def test_a_commit_wakes_the_listener_and_a_rollback_does_not(settings, own_database):
    async def run() -> tuple[bool, bool, bool]:
        engine = create_engine(own_database)
        wakeup = Wakeup(engine)
        try:
            # An endpoint, so the events have deliveries (nothing is sent: no worker runs here).
            ctx = NotificationContext(engine, field_cipher(settings), True, 60.0, 3600.0)
            await endpoints.create_endpoint(
                ctx, Caller(None), {"url": "http://127.0.0.1:9/hooks", "event_types": ["*"]}
            )
            await wakeup.listen()
            listening = wakeup.listening
            await _record(engine, "t-1", rollback=True)
            after_rollback = await wakeup.wait(1.0)
            await _record(engine, "t-1")
            after_commit = await wakeup.wait(INTERVAL_S)
            return listening, after_rollback, after_commit
        finally:
            await wakeup.close()
            await engine.dispose()

    listening, after_rollback, after_commit = asyncio.run(run())
    assert listening
    assert not after_rollback
    assert after_commit


def test_the_worker_sends_an_event_committed_while_it_waits_long_before_its_interval(settings, own_database):
    receiver = Receiver().start()
    config = WorkerConfig(True, 0.1, 0.2, 60.0, 5.0, INTERVAL_S)

    async def run() -> list[str]:
        engine = create_engine(own_database)
        await _endpoint(engine, settings, receiver)
        first = await _record(engine, "t-1")
        worker = DeliveryWorker(engine, field_cipher(settings), config)
        task = asyncio.create_task(worker.run_forever())
        try:
            # The first round sends `first`; the worker then waits (up to INTERVAL_S) for the next.
            await asyncio.to_thread(receiver.wait_for, 1, 30)
            second = await _record(engine, "t-2")
            got = await asyncio.to_thread(receiver.wait_for, 2, INTERVAL_S / 3)
            assert task.done() is False
            return [first, second, *(r.headers["webhook-id"] for r in got)]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await engine.dispose()

    try:
        first, second, *arrived = asyncio.run(run())
    finally:
        receiver.stop()
    assert arrived == [first, second]
    assert all(r.error is None for r in receiver.all())
