"""A real webhook receiver on 127.0.0.1 that verifies every delivery with the `standardwebhooks`
library, and helpers that record outbox events the way application code does."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from infra.database import create_engine
from notifications import outbox
from notifications.events import EventType

HANG = 0  # an answer: none at all, for 8 s


@dataclass
class Received:
    at: float  # time.monotonic() when it arrived
    headers: dict[str, str]
    body: bytes
    payload: Any  # the verified JSON body, or None
    error: str | None  # why verification failed
    answered: int


@dataclass
class Receiver:
    """Answers each request with the next status of `answers` (then 200), after verifying it
    against `secrets` (each signature any of them verifies counts)."""

    secrets: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload, error = None, "no secret to verify with"
                for secret in receiver.secrets:
                    try:
                        payload, error = Webhook(secret).verify(body, headers), None
                        break
                    except WebhookVerificationError as failure:
                        error = str(failure)
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.received.append(Received(time.monotonic(), headers, body, payload, error, status))
                if status == HANG:  # keep the sender waiting (to be killed mid-delivery), then hang up
                    time.sleep(8)
                    return
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout_s: float = 15, where: Callable[[Received], bool] = lambda r: True) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [r for r in self.all() if where(r)]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"wanted {count} deliveries in {timeout_s} s, got {[r.payload for r in self.all()]}")


def record_events(
    settings: Any, events: list[tuple[str, str | None, Mapping[str, Any]]], *, rollback: bool = False, batch: bool = False
) -> list[str]:
    """Record events in one transaction, as application code does (one by one, or as one batch);
    roll it back when asked."""

    class RolledBack(Exception):
        pass

    async def run() -> list[str]:
        engine = create_engine(settings.database_url)
        ids: list[str] = []
        try:
            async with engine.begin() as conn:
                if batch:
                    batched = [outbox.Event(EventType(type_), tenant_id, data) for type_, tenant_id, data in events]
                    ids.extend(await outbox.record_many(conn, batched))
                for type_, tenant_id, data in [] if batch else events:
                    ids.append(await outbox.record(conn, type_, tenant_id, data))
                if rollback:
                    raise RolledBack
        except RolledBack:
            pass
        finally:
            await engine.dispose()
        return ids

    return asyncio.run(run())


def fetch(settings: Any, statement: Any, **params: Any) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return [tuple(row) for row in await conn.execute(statement, params)]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def run_sql(settings: Any, statement: Any) -> None:
    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(statement)
        finally:
            await engine.dispose()

    asyncio.run(run())
