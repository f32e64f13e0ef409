"""One delivery worker against a database of its own (no Ray, no stack replicas): an endpoint
failing for the whole retry window is disabled and says why; an address that is not allowed is
refused at delivery time, and nothing is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select

from infra import webhook_store
from infra.database import create_engine
from infra.keyring_store import field_cipher
from infra.schema import webhook_attempts, webhook_deliveries, webhook_endpoints
from notifications import endpoints, outbox
from notifications.context import NotificationContext
from notifications.delivery_worker import DeliveryWorker, WorkerConfig
from notifications.records import Caller
from tests.notifications.support import Receiver


def _config(**changes) -> WorkerConfig:
    values = {"allow_private": True, "retry_base_s": 0.1, "retry_max_s": 0.2, "retry_window_s": 1.5}
    return WorkerConfig(**(values | {"lease_s": 5.0, "interval_s": 0.05} | changes))


async def _setup(url: str, settings, receiver: Receiver) -> tuple:
    engine = create_engine(url)
    cipher = field_cipher(settings)
    ctx = NotificationContext(engine, cipher, True, 60.0, 3600.0)
    made = await endpoints.create_endpoint(ctx, Caller(None), {"url": receiver.url, "event_types": ["*"]})
    receiver.secrets.append(made.secret)
    async with engine.begin() as conn:
        event_id = await outbox.record(conn, "payment.failed", "t-1", {"payment_id": "p-9"})
    return engine, cipher, made.endpoint.endpoint_id, event_id


@asynccontextmanager
async def _worker(url: str, settings, receiver: Receiver, config: WorkerConfig) -> AsyncIterator[tuple]:
    """A worker with `config` over `_setup`'s endpoint and event: (worker, engine, endpoint id,
    event id); its client and engine are closed after."""
    engine, cipher, endpoint_id, event_id = await _setup(url, settings, receiver)
    worker = DeliveryWorker(engine, cipher, config)
    try:
        yield worker, engine, endpoint_id, event_id
    finally:
        await worker.client.aclose()
        await engine.dispose()


async def _rows(engine, endpoint_id) -> tuple:
    """The endpoint, its one delivery and the delivery's attempts, as stored now."""
    async with engine.connect() as conn:
        endpoint = (
            await conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.endpoint_id == endpoint_id))
        ).one()
        delivery = (await conn.execute(select(webhook_deliveries))).one()
        return endpoint, delivery, (await conn.execute(select(webhook_attempts))).all()


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_says_why(settings, own_database):
    receiver = Receiver(answers=[500] * 1000).start()

    async def run() -> tuple:
        async with _worker(own_database, settings, receiver, _config()) as (worker, engine, endpoint_id, event_id):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                await worker.tick()
                endpoint, delivery, attempts = await _rows(engine, endpoint_id)
                if delivery.status != "pending":
                    return endpoint, delivery, attempts, event_id
                await asyncio.sleep(0.05)
            raise AssertionError("the delivery never gave up")

    try:
        endpoint, delivery, attempts, event_id = asyncio.run(run())
    finally:
        receiver.stop()
    assert delivery.status == "failed"
    assert not endpoint.enabled and "HTTP 500" in endpoint.disabled_reason, endpoint.disabled_reason
    assert len(attempts) >= 3 and {a.status_code for a in attempts} == {500}
    got = receiver.all()
    assert len(got) == len(attempts) and {r.headers["webhook-id"] for r in got} == {event_id}
    assert all(r.error is None for r in got)


def test_an_address_not_allowed_is_refused_at_delivery_time(settings, own_database):
    receiver = Receiver().start()

    async def run() -> list:
        # The address was allowed when the endpoint was made, and is not when the event is sent.
        async with _worker(own_database, settings, receiver, _config(allow_private=False)) as (worker, engine, _, _):
            assert await worker.tick() == 1
            async with engine.connect() as conn:
                return (await conn.execute(select(webhook_attempts))).all()

    try:
        [attempt] = asyncio.run(run())
    finally:
        receiver.stop()
    assert attempt.status_code is None and attempt.error.startswith("refused:") and "127.0.0.1" in attempt.error
    assert receiver.all() == []


def test_an_endpoint_deleted_while_a_worker_records_its_failure_waits_for_it_instead_of_deadlocking(
    settings, own_database, monkeypatch
):
    """The delete comes between the worker's update of the delivery and its update of the
    endpoint (held there): the delete waits for the worker's transaction, then cancels the retry.
    Before the worker locked its endpoints first, PostgreSQL found a deadlock and aborted one."""
    receiver = Receiver(answers=[500] * 10).start()
    recording = asyncio.Event()
    endpoint_failed = webhook_store.endpoint_failed

    async def held_then_failed(*args, **kwargs):
        recording.set()
        await asyncio.sleep(0.5)  # the delete is waiting for a lock by now
        return await endpoint_failed(*args, **kwargs)

    monkeypatch.setattr(webhook_store, "endpoint_failed", held_then_failed)

    async def run() -> tuple:
        config = _config(retry_window_s=3600.0)
        async with _worker(own_database, settings, receiver, config) as (worker, engine, endpoint_id, _):

            async def delete() -> None:
                await recording.wait()
                async with engine.begin() as conn:
                    await webhook_store.delete_endpoint(conn, endpoint_id)

            claimed, _ = await asyncio.gather(worker.tick(), delete())
            return claimed, *await _rows(engine, endpoint_id)

    try:
        claimed, endpoint, delivery, attempts = asyncio.run(run())
    finally:
        receiver.stop()
    assert claimed == 1 and [a.status_code for a in attempts] == [500]
    assert endpoint.deleted_at is not None and not endpoint.enabled
    assert (delivery.status, delivery.last_error) == ("cancelled", "endpoint deleted")
