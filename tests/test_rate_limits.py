"""Per-client rate limits: the request past a client's per-second limit gets 429 problem+json with
Retry-After, naming the limit; other clients are not affected; the window passes; replicas share
one count through Redis; a Redis that does not answer lets requests through.

Each test builds its own app with tiny limits (the session's stack keeps the generous defaults)
on the session's database and Redis, and calls it with a token of a subject of its own, so no
other test's traffic counts against it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from starlette.testclient import TestClient

from serve.app import build_app
from serve.auth import mint
from tests.conftest import free_port

WINDOW_S = 1.0


def _client(settings, role: str) -> dict[str, str]:
    token = mint(settings.jwt_secret, role, subject=f"rl-{uuid.uuid4().hex[:8]}")
    return {"authorization": f"Bearer {token}"}


def _burst(send: Callable[[], httpx.Response], n: int) -> list[httpx.Response]:
    """n requests inside one window. On a machine so loaded that they took longer than a window
    (which would reopen it and prove nothing), wait for a fresh window and send them again."""
    for _ in range(3):
        started = time.monotonic()
        responses = [send() for _ in range(n)]
        if time.monotonic() - started < WINDOW_S * 0.8:
            return responses
        time.sleep(WINDOW_S)
    raise AssertionError(f"{n} requests never fit in one {WINDOW_S} s window")


def _assert_refused(response: httpx.Response, limit: int, setting: str) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-content-type-options"] == "nosniff"  # the guards still answer
    body = response.json()
    assert body["type"].endswith("/rate-limited") and body["status"] == 429
    assert f"at most {limit} requests per second" in body["detail"] and setting in body["detail"]


def test_the_request_past_the_limit_is_429_and_other_clients_go_on(stack, settings):
    limited = settings.with_(rate_limit_default=3)
    alice, bob = _client(settings, "viewer"), _client(settings, "viewer")
    with TestClient(build_app(limited)) as api:
        responses = _burst(lambda: api.get("/api/v1/tenants/nobody", headers=alice), 4)
        assert [r.status_code for r in responses[:3]] == [404] * 3  # let through to the handler
        _assert_refused(responses[3], 3, "BILLING_RATE_LIMIT_DEFAULT")
        assert api.get("/api/v1/tenants/nobody", headers=bob).status_code == 404
        time.sleep(int(responses[3].headers["retry-after"]))
        assert api.get("/api/v1/tenants/nobody", headers=alice).status_code == 404


def test_ingest_has_its_own_limit_and_a_refused_batch_is_not_taken(stack, settings):
    limited = settings.with_(rate_limit_ingest=2)
    kernel = _client(settings, "kernel")
    event = {
        "tenant_id": f"rl-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"executions": 1},
    }
    sent: list[str] = []

    def post(event_id: str | None = None) -> httpx.Response:
        sent.append(event_id or uuid.uuid4().hex)
        return api.post("/api/v1/usage", json=event | {"event_id": sent[-1]}, headers=kernel)

    with TestClient(build_app(limited)) as api:
        first, second, third = _burst(post, 3)
        assert (first.status_code, second.status_code) == (202, 202)
        _assert_refused(third, 2, "BILLING_RATE_LIMIT_INGEST")
        time.sleep(WINDOW_S)
        # The refused event was never logged: sent again, it is accepted, not a duplicate.
        again = post(sent[-1])
    assert again.status_code == 202 and again.json() == {"queued": True, "accepted": 1, "duplicates": 0}


def test_a_batch_over_the_limit_is_refused_on_every_shard(stack, settings):
    # The limit is counted by the append itself (issue 15): a batch spread over shards is one
    # request, counted once, and refused whole by each shard's call.
    from actors.sharding import shard_of

    limited = settings.with_(rate_limit_ingest=1)
    kernel = _client(settings, "kernel")
    tenants: list[str] = []
    while len(tenants) < 2 or len({shard_of(t, settings.shards) for t in tenants}) < min(2, settings.shards):
        tenants.append(f"rls-{uuid.uuid4().hex[:8]}")
    stamp = datetime.now(UTC).isoformat()

    def batch() -> dict:
        events = [
            {"tenant_id": t, "timestamp": stamp, "usage": {"executions": 1}, "event_id": uuid.uuid4().hex}
            for t in tenants
        ]
        return {"events": events}

    with TestClient(build_app(limited)) as api:
        accepted = api.post("/api/v1/usage", json=batch(), headers=kernel)
        refused_batch = batch()
        refused = api.post("/api/v1/usage", json=refused_batch, headers=kernel)
        assert accepted.status_code == 202, accepted.text
        _assert_refused(refused, 1, "BILLING_RATE_LIMIT_INGEST")
        time.sleep(WINDOW_S)
        again = api.post("/api/v1/usage", json=refused_batch, headers=kernel)
    assert again.status_code == 202
    assert again.json() == {"queued": True, "accepted": len(tenants), "duplicates": 0}


def test_two_replicas_share_one_count(stack, settings):
    limited = settings.with_(rate_limit_default=4)
    carol = _client(settings, "viewer")
    with TestClient(build_app(limited)) as one, TestClient(build_app(limited)) as two:
        replicas = iter([one, two] * 3)
        responses = _burst(lambda: next(replicas).get("/api/v1/tenants/nobody", headers=carol), 5)
    assert [r.status_code for r in responses[:4]] == [404] * 4
    _assert_refused(responses[4], 4, "BILLING_RATE_LIMIT_DEFAULT")


def test_probes_are_never_limited(stack, settings):
    with TestClient(build_app(settings.with_(rate_limit_default=1))) as api:
        assert [api.get("/healthz").status_code for _ in range(5)] == [200] * 5


def test_redis_down_lets_requests_through(stack, settings):
    down = settings.with_(rate_limit_default=1, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    dave = _client(settings, "viewer")
    with TestClient(build_app(down)) as api:
        statuses = [api.get("/api/v1/tenants/nobody", headers=dave).status_code for _ in range(3)]
    assert statuses == [404] * 3  # neither 429 nor 500: the limiter fails open
