"""The demo's webhook receiver (cli/demo_webhooks.py): it verifies what the delivery worker signs,
refuses what another secret signed, and counts an event resent with the same webhook-id once.
No stack: deliveries are signed by notifications/signing.py and posted over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from cli.demo_webhooks import DemoReceiver, summary
from notifications.events import EventType, event_body, new_event_id
from notifications.signing import headers, new_secret


@pytest.fixture
def receiver():
    made = DemoReceiver().start()
    made.secret = new_secret()
    yield made
    made.stop()


def _post(receiver: DemoReceiver, event_type: EventType, secrets: list[str], event_id: str | None = None, at=None):
    event_id = event_id or new_event_id()
    created = datetime.now(UTC) - timedelta(seconds=2)
    body = orjson.dumps(event_body(event_id, event_type, created, {"amount": "50.12", "currency": "usd", "threshold": "50.00"}))
    signed = headers(event_id, at or datetime.now(UTC), body, secrets)
    return httpx.post(receiver.url, content=body, headers=signed, timeout=5)


def test_signed_deliveries_verify_and_are_counted_by_event(receiver):
    first = _post(receiver, EventType.INVOICE_FINALIZED, [receiver.secret])
    assert first.status_code == 200
    resent_id = new_event_id()
    for _ in range(2):  # a retry: the same webhook-id again
        assert _post(receiver, EventType.PAYMENT_SUCCEEDED, [receiver.secret], resent_id).status_code == 200
    # during a rotation's grace period two signatures travel; the receiver's secret matches one
    assert _post(receiver, EventType.INVOICE_PAID, [new_secret(), receiver.secret]).status_code == 200

    got = receiver.all()
    assert [r.error for r in got] == [None] * 4
    assert [r.event_type for r in got] == ["invoice.finalized", "payment.succeeded", "payment.succeeded", "invoice.paid"]
    assert all(1.5 < r.latency_s < 10 for r in got)
    lines = summary(got)
    assert lines[0] == (
        "4 deliveries of 3 events (1 sent again with the same webhook-id); "
        "all 4 signatures verify with the endpoint's secret (standardwebhooks)"
    )
    assert lines[1] == "events: invoice.finalized ×1, payment.succeeded ×1, invoice.paid ×1"  # as they arrived
    assert lines[2].startswith("recorded to arrived: median 2.")


def test_another_secret_or_a_stale_timestamp_is_refused(receiver):
    assert _post(receiver, EventType.INVOICE_FINALIZED, [new_secret()]).status_code == 400
    stale = datetime.now(UTC) - timedelta(minutes=10)  # outside standardwebhooks' 5 min tolerance
    assert _post(receiver, EventType.INVOICE_FINALIZED, [receiver.secret], at=stale).status_code == 400
    got = receiver.all()
    assert [r.error for r in got] == ["No matching signature found", "Message timestamp too old"]
    lines = summary(got)
    assert lines[0].startswith("2 deliveries of 0 events; 0 of 2 signatures verify")
    assert [line for line in lines if line.startswith("NOT verified")] == [
        f"NOT verified ({got[0].webhook_id}): No matching signature found",
        f"NOT verified ({got[1].webhook_id}): Message timestamp too old",
    ]


def test_before_the_secret_is_known_nothing_verifies():
    made = DemoReceiver()
    assert made.verify(b"{}", {"webhook-id": "msg_1"}).error == "no secret yet"
