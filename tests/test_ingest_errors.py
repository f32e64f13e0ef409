"""Every way an ingest request is refused: a 4xx problem+json naming the field, nothing accepted."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from serve import usage_events
from serve.auth import AUDIENCE, ISSUER, mint
from tests.conftest import auth


def json_auth(token: str) -> dict[str, str]:
    return auth(token) | {"content-type": "application/json"}


def event(**overrides) -> dict:
    """A valid event with `overrides`; a timedelta timestamp is that far from now."""
    if isinstance(overrides.get("timestamp"), timedelta):
        overrides["timestamp"] = (datetime.now(UTC) + overrides["timestamp"]).isoformat()
    base = {
        "tenant_id": "acme",
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"cpu_seconds": "1"},
        "event_id": uuid.uuid4().hex,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"usage": {"cpu_seconds": -1}}, "events[1].usage.cpu_seconds"),
        ({"usage": {"memory_gb_hours": "NaN"}}, "events[1].usage.memory_gb_hours"),
        ({"usage": {"network_gb": "HUGE"}}, "events[1].usage.network_gb"),  # a JSON 1e400
        ({"usage": {"storage_gb_hours": "lots"}}, "events[1].usage.storage_gb_hours"),
        ({"usage": {"executions": 2.5}}, "events[1].usage.executions"),
        ({"usage": {"executions": -3}}, "events[1].usage.executions"),
        ({"usage": {"executions": "5"}}, "events[1].usage.executions"),
        ({"usage": {"executions": True}}, "events[1].usage.executions"),
        ({"usage": {"cpu_seconds": "0.0000000000001"}}, "events[1].usage.cpu_seconds"),
        ({"usage": {"gpu_seconds": 1}}, "events[1].usage.gpu_seconds"),
        ({"timestamp": "2026-11-24T10:00:00"}, "events[1].timestamp"),
        ({"timestamp": "yesterday"}, "events[1].timestamp"),
        # Offsets from the moment the request is sent (not from collection, minutes earlier).
        ({"timestamp": timedelta(minutes=10)}, "events[1].timestamp"),
        ({"timestamp": -timedelta(days=3)}, "events[1].timestamp"),
        ({"tenant_id": ""}, "events[1].tenant_id"),
        ({"tenant_id": "bad\ttenant"}, "events[1].tenant_id"),
        ({"tenant_id": "acme\n"}, "events[1].tenant_id"),  # `$` would let a final newline through
        ({"event_id": "has space"}, "events[1].event_id"),
        # Event ids are checked without a regex on the fast path: the same rule as the pattern's.
        ({"event_id": ""}, "events[1].event_id"),
        ({"event_id": "x" * 129}, "events[1].event_id"),
        ({"event_id": "caf\u00e9"}, "events[1].event_id"),
        ({"event_id": "bell\u0007"}, "events[1].event_id"),
        ({"event_id": "del\u007f"}, "events[1].event_id"),
        ({"colour": "blue"}, "events[1].colour"),
    ],
)
def test_each_invalid_field_is_named_and_the_batch_refused(api, tokens, bad, field):
    good = event(tenant_id=f"never-{uuid.uuid4().hex[:6]}")
    content = json.dumps({"events": [good, event(**bad)]}).replace('"HUGE"', "1e400")
    response = api.post("/api/v1/usage", content=content, headers=json_auth(tokens["kernel"]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422 and field in [e["field"] for e in body["errors"]]
    # Nothing of the refused batch was accepted: the good event can be sent again as new.
    again = api.post("/api/v1/usage", json=good, headers=auth(tokens["kernel"]))
    assert again.json()["duplicates"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"events": []}', "events"),
        (b'{"tenant_id": "acme", "usage": {}}', "timestamp"),
    ],
)
def test_malformed_bodies(api, tokens, body, field):
    response = api.post("/api/v1/usage", content=body, headers=json_auth(tokens["kernel"]))
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_a_missing_meter_is_zero_and_every_bad_event_is_listed(api, tokens):
    bad = [event(usage={"cpu_seconds": -1}), event(), event(usage={"executions": "x"})]
    body = api.post("/api/v1/usage", json={"events": bad}, headers=auth(tokens["kernel"])).json()
    assert [e["field"] for e in body["errors"]] == [
        "events[0].usage.cpu_seconds",
        "events[2].usage.executions",
    ]


def test_oversized_batch_is_413(api, tokens, settings):
    events = [event() for _ in range(settings.max_batch + 1)]
    response = api.post("/api/v1/usage", json={"events": events}, headers=auth(tokens["kernel"]))
    assert response.status_code == 413 and "events" in response.json()["detail"]


def test_ingest_auth(api, tokens, settings):
    body = event()
    assert api.post("/api/v1/usage", json=body).status_code == 401
    assert api.post("/api/v1/usage", json=body, headers={"authorization": "Basic eDp5"}).status_code == 401
    forged = mint("not-the-key", "kernel")
    assert api.post("/api/v1/usage", json=body, headers=auth(forged)).status_code == 401
    now = int(time.time())
    expired = jwt.encode(
        {
            "sub": "k",
            "roles": ["kernel"],
            "scope": "usage:write",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now - 7200,
            "exp": now - 3600,
        },
        settings.jwt_secret,
    )
    response = api.post("/api/v1/usage", json=body, headers=auth(expired))
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    for role in ("viewer", "finance", "billing-admin", "tenant"):
        assert api.post("/api/v1/usage", json=body, headers=auth(tokens[role])).status_code == 403


def test_reads_are_scoped_by_role_and_tenant(api, tokens):
    assert api.get("/api/v1/usage/tenant-a").status_code == 401
    assert api.get("/api/v1/usage/tenant-a", headers=auth(tokens["tenant"])).status_code == 200
    other = api.get("/api/v1/usage/tenant-b", headers=auth(tokens["tenant"]))
    assert other.status_code == 403 and other.json()["type"].endswith("/forbidden")
    assert api.get("/api/v1/usage", headers=auth(tokens["tenant"])).status_code == 403
    assert api.get("/api/v1/usage", headers=auth(tokens["kernel"])).status_code == 403
    assert api.get("/api/v1/tenants/tenant-b", headers=auth(tokens["tenant"])).status_code == 403
    assert api.post("/api/v1/tenants", json={}, headers=auth(tokens["finance"])).status_code == 403


def test_bad_query_parameters(api, tokens):
    headers = auth(tokens["viewer"])
    assert api.get("/api/v1/usage/a", params={"granularity": "week"}, headers=headers).status_code == 422
    backwards = api.get(
        "/api/v1/usage/a",
        params={"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        headers=headers,
    )
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "to"
    naive = api.get("/api/v1/usage/a", params={"from": "2026-11-01T00:00:00"}, headers=headers)
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "from"
    # Usage is kept per hour: a bound inside an hour would silently cut a row.
    inside = api.get("/api/v1/usage/a", params={"from": "2026-11-01T00:30:00Z"}, headers=headers)
    assert inside.status_code == 422 and inside.json()["errors"][0]["field"] == "from"
    ancient = api.get("/api/v1/usage/a", params={"from": "0001-01-01T00:00:00Z"}, headers=headers)
    assert ancient.status_code == 422 and ancient.json()["errors"][0]["field"] == "from"


def test_tenant_registration_errors_name_the_field(api, tokens):
    body = {
        "tenant_id": "x1",
        "name": "X",
        "tier": "gold",
        "currency": "usx",
        "country": "ZZ",
        "vat_id": "DE000000000",
    }
    response = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"tier", "currency", "country", "vat_id"}
    missing = api.get("/api/v1/tenants/nobody", headers=auth(tokens["viewer"]))
    assert missing.status_code == 404 and missing.json()["title"] == "No such tenant"


def test_the_fast_paths_event_id_check_gives_the_patterns_verdict():
    """The fast path checks event ids with string methods, not the published pattern: the same
    verdict for every character up to U+02FF, the empty id and both sides of 128 characters."""
    pattern = re.compile(usage_events._EVENT_ID)
    samples = [chr(code) * 2 for code in range(0x300)] + ["", "a" * 128, "a" * 129, "a b", "ok-1:x"]
    for sample in samples:
        assert usage_events._is_event_id(sample) == (pattern.match(sample) is not None), repr(sample)
