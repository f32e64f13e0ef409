"""Deliveries per second sustained by ONE webhook delivery worker, and the outbox lag (event
committed -> delivered) of a burst like an invoice run's: N invoice.finalized events committed in
one transaction, sent to one receiver (uvicorn, another process, answering 204 at once).

    DATABASE_URL=postgresql://... .venv/bin/python bench/webhook_deliveries.py [--events 1000]

Uses a database of its own (created, migrated, dropped) under DATABASE_URL's server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid

import httpx
from sqlalchemy import select

from infra.database import create_database, create_engine, drop_database, migrate
from infra.field_encryption import FieldCipher, Keyring
from infra.schema import webhook_deliveries, webhook_events
from notifications import endpoints, outbox
from notifications.context import NotificationContext
from notifications.delivery_worker import DeliveryWorker, WorkerConfig
from notifications.records import Caller

RECEIVER = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(url: str, receiver_url: str, events: int) -> tuple[float, float, float]:
    engine = create_engine(url)
    cipher = FieldCipher(Keyring.generate())
    ctx = NotificationContext(engine, cipher, True, 60.0, 3600.0)
    await endpoints.create_endpoint(ctx, Caller(None), {"url": receiver_url, "event_types": ["*"]})
    async with engine.begin() as conn:
        for n in range(events):
            await outbox.record(conn, "invoice.finalized", f"t-{n}", {"invoice_id": str(uuid.uuid4()), "total": "99.00"})
    config = WorkerConfig(True, 1.0, 60.0, 3600.0, 30.0, 0.05)
    worker = DeliveryWorker(engine, cipher, config)
    started = time.monotonic()
    delivered = 0
    while delivered < events:
        delivered += await worker.tick()
    elapsed = time.monotonic() - started
    await worker.client.aclose()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(webhook_deliveries.c.delivered_at - webhook_events.c.created_at).join(
                    webhook_events, webhook_events.c.event_id == webhook_deliveries.c.event_id
                )
            )
        ).scalars().all()
    await engine.dispose()
    lags = sorted(lag.total_seconds() for lag in rows)
    return events / elapsed, lags[len(lags) // 2], lags[int(len(lags) * 0.99) - 1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    base = os.environ["DATABASE_URL"]
    name = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(base, name))
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER + f"\nimport uvicorn; uvicorn.run(app, port={port}, log_level='error')"]
    )
    try:
        migrate(url)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        rate, p50, p99 = asyncio.run(measure(url, f"http://127.0.0.1:{port}/hooks", args.events))
        print(f"{args.events} deliveries by one worker: {rate:.0f}/s; outbox lag p50 {p50:.2f} s, p99 {p99:.2f} s")
    finally:
        receiver.kill()
        asyncio.run(drop_database(base, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
