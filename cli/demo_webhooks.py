"""The demo's outbound webhooks and alerts (issue 17), as a tenant's developer meets them.

A small HTTP receiver runs in the demo process on 127.0.0.1 (the service's replicas run on this
machine and reach it; the demo's stack allows loopback targets, which a real deployment refuses).
One tenant registers it through the public API with its own token, for every event type, and sets
a spend alert; its invoice, its payment and the alert then arrive as signed webhooks. The receiver
verifies each delivery the way a tenant's code would, with the `standardwebhooks` library and the
secret the API returned, and the demo prints what arrived. At the end the endpoint and the alert
are deleted: the receiver stops with the demo, and a later run must not retry into a dead port.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

TENANT = "acme-zero"  # pays by a saved card: invoice.finalized, payment.succeeded, invoice.paid
SPEND_THRESHOLD = "50.00"  # in its invoice currency (USD); the demo's day of usage is above it
SETTINGS = {"webhook_allow_private": True}  # the receiver is on 127.0.0.1
MAX_BODY = 256 * 1024
SETTLE_S = 15.0  # how long the report waits for deliveries still pending


@dataclass(frozen=True)
class Received:
    webhook_id: str
    event_type: str | None  # from the verified body; None when it did not verify
    payload: Any
    error: str | None  # why the signature did not verify
    latency_s: float | None  # from the event's created_at to its arrival here


@dataclass
class DemoReceiver:
    """Answers 200 to every POST after verifying it with the endpoint's secret (set once the
    endpoint is registered); keeps what arrived, each retry included."""

    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/billing-webhooks"

    def verify(self, body: bytes, headers: Mapping[str, str], now: datetime | None = None) -> Received:
        """One delivery checked as a tenant's code would: signature (any of the space-separated
        ones) and timestamp by `standardwebhooks`, with the endpoint's secret."""
        headers = {k.lower(): v for k, v in headers.items()}
        webhook_id = headers.get("webhook-id", "")
        if self.secret is None:
            return Received(webhook_id, None, None, "no secret yet", None)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as failure:
            return Received(webhook_id, None, None, str(failure) or type(failure).__name__, None)
        latency = None
        if isinstance(payload, dict) and isinstance(payload.get("created_at"), str):
            created = datetime.fromisoformat(payload["created_at"])
            latency = ((now or datetime.now(created.tzinfo)) - created).total_seconds()
        event_type = payload.get("type") if isinstance(payload, dict) else None
        return Received(webhook_id, event_type, payload, None, latency)

    def start(self) -> DemoReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    self.send_response(413)
                    self.end_headers()
                    return
                got = receiver.verify(self.rfile.read(length), dict(self.headers.items()))
                with receiver.lock:
                    receiver.received.append(got)
                self.send_response(200 if got.error is None else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="demo-webhook-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def summary(received: list[Received]) -> list[str]:
    """What arrived, for a newcomer: deliveries, whether they verified, events by type in the order
    they first arrived (each once: a retry or replay carries the same webhook-id), and how long
    events took from being recorded to arriving."""
    verified = [r for r in received if r.error is None]
    first: dict[str, Received] = {}
    for r in verified:
        first.setdefault(r.webhook_id, r)
    resent = len(verified) - len(first)
    checked = (
        f"all {len(received)} signatures verify"
        if len(verified) == len(received)
        else f"{len(verified)} of {len(received)} signatures verify"
    )
    lines = [
        f"{len(received)} deliveries of {len(first)} events"
        + (f" ({resent} sent again with the same webhook-id)" if resent else "")
        + f"; {checked} with the endpoint's secret (standardwebhooks)"
    ]
    by_type = Counter(r.event_type or "?" for r in first.values())  # first-arrival order
    if by_type:
        lines.append("events: " + ", ".join(f"{t} ×{n}" for t, n in by_type.items()))
    latencies = sorted(r.latency_s for r in first.values() if r.latency_s is not None)
    if latencies:
        lines.append(
            f"recorded to arrived: median {latencies[len(latencies) // 2]:.1f} s, max {latencies[-1]:.1f} s"
        )
    lines += [f"NOT verified ({r.webhook_id}): {r.error}" for r in received if r.error is not None]
    return lines


@contextmanager
def receiver() -> Iterator[DemoReceiver]:
    made = DemoReceiver().start()
    try:
        yield made
    finally:
        made.stop()


@dataclass(frozen=True)
class Subscription:
    endpoint_id: str
    alert_id: str
    headers: dict[str, str]  # the tenant's token


def subscribe(client: Any, tenant_token: str, demo_receiver: DemoReceiver) -> Subscription:
    """The tenant registers the receiver for every event type and a spend alert, as its developer
    would with curl; the secret from the answer goes to the receiver."""
    headers = {"authorization": f"Bearer {tenant_token}"}
    made = client.post(
        "/api/v1/webhook-endpoints", json={"url": demo_receiver.url, "event_types": ["*"]}, headers=headers
    )
    made.raise_for_status()
    endpoint = made.json()
    demo_receiver.secret = endpoint["secret"]
    alert = client.post(
        f"/api/v1/tenants/{TENANT}/alerts", json={"kind": "spend", "threshold": SPEND_THRESHOLD}, headers=headers
    )
    alert.raise_for_status()
    currency = alert.json()["currency"].upper()
    print(
        f"Webhooks: {TENANT} registered {demo_receiver.url} (a receiver in this process) for every event "
        f"type, and a spend alert at {SPEND_THRESHOLD} {currency} this month"
    )
    return Subscription(endpoint["id"], alert.json()["id"], headers)


def report(client: Any, subscription: Subscription, demo_receiver: DemoReceiver) -> None:
    """Wait (briefly) for deliveries still pending, replay the first one as an operator would after
    an outage, print what the receiver got, then delete the endpoint and the alert."""
    deliveries = _settled(client, subscription)
    replayed = _replay_oldest(client, subscription, demo_receiver, deliveries)
    received = demo_receiver.all()
    print(f"\nWebhooks received by {TENANT}'s endpoint:")
    for line in summary(received):
        print(f"  {line}")
    pending = [d for d in deliveries if d["status"] == "pending"]
    if pending:
        print(f"  {len(pending)} still pending after {SETTLE_S:.0f} s (GET /api/v1/webhook-deliveries shows why)")
    if replayed is not None:
        print(
            f"  replay: POST /api/v1/webhook-deliveries/{{id}}/replay sent the {replayed} delivery again, "
            "with the same webhook-id (a receiver deduplicates by it)"
        )
    crossed = [
        r.payload["data"] for r in received if r.error is None and r.event_type == "spend.threshold_crossed"
    ]
    if crossed:
        data = crossed[0]
        currency = data["currency"].upper()
        print(
            f"  spend alert: fired at month to date {data['amount']} {currency} "
            f"(threshold {data['threshold']} {currency}); it fires once per billing period"
        )
    else:
        print(f"  spend alert: not crossed yet (threshold {SPEND_THRESHOLD})")
    client.delete(
        f"/api/v1/webhook-endpoints/{subscription.endpoint_id}", headers=subscription.headers
    ).raise_for_status()
    client.delete(
        f"/api/v1/tenants/{TENANT}/alerts/{subscription.alert_id}", headers=subscription.headers
    ).raise_for_status()
    print("  (endpoint and alert deleted: the receiver stops with the demo)")


def _settled(client: Any, subscription: Subscription) -> list[dict[str, Any]]:
    """The endpoint's deliveries (newest first) once none is pending, or after SETTLE_S."""
    params = {"endpoint_id": subscription.endpoint_id, "limit": 200}
    deadline = time.monotonic() + SETTLE_S
    while True:
        answer = client.get("/api/v1/webhook-deliveries", params=params, headers=subscription.headers)
        answer.raise_for_status()
        deliveries: list[dict[str, Any]] = answer.json()["deliveries"]
        if all(d["status"] != "pending" for d in deliveries) or time.monotonic() > deadline:
            return deliveries
        time.sleep(0.5)


def _replay_oldest(
    client: Any, subscription: Subscription, demo_receiver: DemoReceiver, deliveries: list[dict[str, Any]]
) -> str | None:
    """Replay the oldest delivered one; its event type once it has arrived again (5 s at most)."""
    delivered = [d for d in deliveries if d["status"] == "delivered"]
    if not delivered:
        return None
    oldest = delivered[-1]
    before = sum(r.webhook_id == oldest["event_id"] for r in demo_receiver.all())
    client.post(
        f"/api/v1/webhook-deliveries/{oldest['id']}/replay", headers=subscription.headers
    ).raise_for_status()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(r.webhook_id == oldest["event_id"] for r in demo_receiver.all()) > before:
            return str(oldest["event_type"])
        time.sleep(0.1)
    return None
