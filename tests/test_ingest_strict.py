"""Issue 15: ingest is exact and strict. A JSON number is read from its text (never through a
float) or refused; lax text, duplicate keys, epoch timestamps and non-JSON bodies are refused
naming the field, and nothing of a refused request is accepted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.conftest import auth
from tests.metering_support import wait_settled

JSON = {"content-type": "application/json"}


def text(tenant: str, usage: str, event_id: str | None = None, timestamp: str | None = None) -> str:
    """A record written by hand, so numbers keep the exact text under test."""
    stamp = timestamp or f'"{datetime.now(UTC).isoformat()}"'
    return (
        f'{{"tenant_id": "{tenant}", "timestamp": {stamp}, "usage": {usage},'
        f' "event_id": "{event_id or uuid.uuid4().hex}"}}'
    )


def post(api, tokens, content: str, headers: dict[str, str] = JSON):
    return api.post("/api/v1/usage", content=content.encode(), headers=auth(tokens["kernel"]) | headers)


def live(api, tokens, tenant: str, meter: str) -> Decimal:
    rows = api.get(f"/api/v1/usage/{tenant}", headers=auth(tokens["viewer"])).json()["rows"]
    return sum((Decimal(row[meter]) for row in rows), Decimal(0))


@pytest.mark.parametrize(
    ("number", "meter", "expected"),
    [
        # Through a float these were 123456789.12345679 and 12345678901234568.
        ("123456789.123456789012", "cpu_seconds", Decimal("123456789.123456789012")),
        ("12345678901234567.5", "cpu_seconds", Decimal("12345678901234567.5")),
        ("123456789.123456789", "network_gb", Decimal("123456789.123456789")),
        ("1e3", "storage_gb_hours", Decimal(1000)),
        ("1000000000000000000", "memory_gb_hours", Decimal("1e18")),
    ],
)
def test_a_json_number_is_taken_exactly_from_its_text(api, tokens, stack, number, meter, expected):
    tenant = f"exact-{uuid.uuid4().hex[:8]}"
    response = post(api, tokens, text(tenant, f'{{"{meter}": {number}}}'))
    assert response.status_code == 202, response.text
    wait_settled(stack)
    assert live(api, tokens, tenant, meter) == expected


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ('{"cpu_seconds": 1e-400}', "cpu_seconds"),  # was stored as 0
        ('{"cpu_seconds": 1e400}', "cpu_seconds"),
        ('{"cpu_seconds": 0.0000000000001}', "cpu_seconds"),  # 13 fractional digits
        ('{"cpu_seconds": 1.0000000000001}', "cpu_seconds"),
        ('{"cpu_seconds": 1000000000000000000.1}', "cpu_seconds"),
        ('{"cpu_seconds": "1_000"}', "cpu_seconds"),
        ('{"cpu_seconds": "\uff11\uff12"}', "cpu_seconds"),  # full-width digits
        ('{"cpu_seconds": "\\u0031"}', "cpu_seconds"),  # a digit written as an escape
        ('{"network_gb": " 1 "}', "network_gb"),
        ('{"network_gb": "1e3"}', "network_gb"),
        ('{"network_gb": "+1"}', "network_gb"),
        ('{"network_gb": "-0"}', "network_gb"),
        ('{"network_gb": "1."}', "network_gb"),
        ('{"network_gb": ".5"}', "network_gb"),
        ('{"network_gb": "01"}', "network_gb"),
        ('{"network_gb": "Infinity"}', "network_gb"),
        ('{"network_gb": null}', "network_gb"),
        ('{"network_gb": -0}', "network_gb"),
        ('{"executions": 1e3}', "executions"),
        ('{"executions": 1.0}', "executions"),
    ],
)
def test_lax_quantities_are_refused_naming_the_field(api, tokens, usage, field):
    good = text(f"never-{uuid.uuid4().hex[:6]}", '{"executions": 1}')
    content = f'{{"events": [{good}, {text("acme", usage)}]}}'
    response = post(api, tokens, content)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [f"events[1].usage.{field}"]
    assert post(api, tokens, good).json() == {"queued": True, "accepted": 1, "duplicates": 0}


@pytest.mark.parametrize(
    "timestamp", ["1764806400", "1764806400.5", '"1764806400"', '"2026-12-04T10:00:00"', '"now"']
)
def test_a_timestamp_must_be_rfc_3339_with_an_offset(api, tokens, timestamp):
    response = post(api, tokens, text("acme", '{"executions": 1}', timestamp=timestamp))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["timestamp"]


def test_a_duplicated_tenant_id_is_refused_not_billed_to_the_second(api, tokens):
    first, second = f"dupkey-{uuid.uuid4().hex[:6]}", f"dupkey-{uuid.uuid4().hex[:6]}"
    record = text(first, '{"executions": 1}').replace("{", f'{{"tenant_id": "{second}", ', 1)
    response = post(api, tokens, f'{{"events": [{record}]}}')
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["events[0].tenant_id"]
    single = post(api, tokens, record.replace('"tenant_id"', ' "tenant_id" ', 1))  # spaced out
    assert single.status_code == 422 and single.json()["errors"][0]["field"] == "tenant_id"


def test_two_events_keys_are_refused(api, tokens):
    one, two = text("acme", '{"executions": 1}'), text("acme", '{"executions": 2}')
    response = post(api, tokens, f'{{"events": [{one}], "events": [{two}]}}')
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "events"
    nested = post(api, tokens, text("acme", '{"executions": 1, "executions": 2}'))
    assert nested.status_code == 422 and nested.json()["errors"][0]["field"] == "usage.executions"


def test_a_quote_and_colon_inside_an_event_id_is_no_duplicate(api, tokens):
    # Keys are counted on the text: a `":` inside a string must not refuse a valid request.
    response = post(api, tokens, text("acme", '{"executions": 1}', event_id=f'{uuid.uuid4().hex}\\":'))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"}],
)
def test_a_body_that_is_not_declared_json_is_refused(api, tokens, headers):
    response = post(api, tokens, text("acme", '{"executions": 1}'), headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "Content-Type"


def test_json_with_a_charset_is_json(api, tokens):
    headers = {"content-type": "application/json; charset=utf-8"}
    assert post(api, tokens, text("acme", '{"executions": 1}'), headers).status_code == 202


def test_a_null_event_id_is_no_event_id(api, tokens):
    # As before the strict parser: the id is then derived from the record, so the same record
    # sent again is a duplicate.
    stamp = datetime.now(UTC).isoformat()
    record = (
        f'{{"tenant_id": "null-{uuid.uuid4().hex[:6]}", "timestamp": "{stamp}",'
        ' "usage": {"executions": 1}, "event_id": null}'
    )
    first, again = post(api, tokens, record), post(api, tokens, record)
    assert first.json()["accepted"] == 1 and again.json()["duplicates"] == 1, (first.text, again.text)
