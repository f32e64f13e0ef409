"""Fuzzing (issue 7): schemathesis against our own OpenAPI spec, every operation, with a real
billing-admin token and again with a tenant's. Whatever it sends, the API answers no 5xx at all
(its documented 503s are for dependencies that are down, and here none is), every error is
problem+json (RFC 9457) with a `title` and the response's `status`, and a 422 names the failing
field in `errors`. The line `schemathesis: N operations, M examples, K server errors` in the
session summary says how much was run.

It fuzzes a deployment of its own, never the session's: a fresh database and Redis prefix, its
own shard actors in the session's Ray, and the app in-process through schemathesis's ASGI
transport (which runs the app's lifespan). The admin routes it hammers (catalog versions, tenant
pricing, credits, invoice runs, payments...) would otherwise change data other tests rely on.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.core.failures import AcceptedNegativeData

# The builder of schemathesis's pytest plugin (hence the pin to 4.32.x in pyproject.toml): that
# plugin's lazy schemas (from a fixture) do not run under pytest 9 (they set Node._nodeid, gone
# there), so the tests below call it themselves.
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test

from infra.database import create_database, drop_database, migrate
from infra.settings import Settings
from serve.access import ACCESS, PUBLIC
from serve.auth import mint
from tests.conftest import SESSION, auth
from tests.stack_support import finalized_lite_invoice

# Examples per operation in the fuzzing phase; BILLING_FUZZ_EXAMPLES raises it for a deeper run.
ADMIN_EXAMPLES = int(os.environ.get("BILLING_FUZZ_EXAMPLES", "25"))
TENANT_EXAMPLES = max(1, ADMIN_EXAMPLES // 3)
OWN_TENANT, OTHER_TENANT = "fuzz-own", "fuzz-other"

# Every built-in check runs, response conformance included: each operation declares its
# problem+json answers (serve/problems.py), so status codes, media types and bodies are checked.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # The spec cannot say "a known currency", "period_end after period_start" or "an
            # invoice that exists", so a schema-valid request may rightly get a 422 naming the
            # field; anything else (400, 413, 415, 5xx) for valid data is still a failure.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
            },
        },
        # The stateful phase chains calls through links our spec does not declare.
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                # No fuzzer can sign a webhook: a schema-valid body is refused 400 as unsigned.
                "include-path-regex": "/webhooks/",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422", "429"]
                    }
                },
            }
        ],
    }
)
# The same examples on every run unless BILLING_FUZZ_RANDOM=1: a suite that fails one run in ten
# on whatever it happened to draw blocks every change, while the bug it found waits. A random
# (and deeper: BILLING_FUZZ_EXAMPLES) run is how new cases are looked for; each bug found becomes
# a regression test below (one found `?since=0.0` read as Unix seconds).
RANDOM = os.environ.get("BILLING_FUZZ_RANDOM") == "1"
HYPOTHESIS = hypothesis.settings(
    deadline=None,  # two busy cores: a slow request is not a failure here
    database=None,  # nothing written under the work tree
    derandomize=not RANDOM,
    suppress_health_check=list(HealthCheck),
)


@dataclass
class Tally:
    """What the fuzzing ran: examples per operation, answers per status class, server errors."""

    examples: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def record(self, case, response) -> None:
        self.examples[case.operation.label] += 1
        self.answers[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{case.operation.label}: {response.status_code}")

    def line(self) -> str:
        answers = ", ".join(f"{count} {kind}" for kind, count in sorted(self.answers.items()))
        return (
            f"schemathesis: {len(self.examples)} operations, {sum(self.examples.values())} examples, "
            f"{len(self.server_errors)} server errors (answers: {answers or 'none'})"
        )


TALLY = Tally()


@schemathesis.check
def problem_details(ctx, response, case) -> None:
    """Every error is problem+json with a title and its own status; a 422 names the field."""
    if response.status_code < 400:
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media_type == "application/problem+json", f"an error as {media_type!r}, not problem+json"
    body = orjson.loads(response.content)
    assert isinstance(body.get("title"), str) and body["title"], "a problem without a title"
    assert body.get("status") == response.status_code, f"status {body.get('status')} in the body"
    if response.status_code == 422:
        errors = body.get("errors") or []
        assert errors and all(e.get("field") for e in errors), "a 422 that names no field"


@pytest.fixture(scope="module")
def fuzz_settings(settings: Settings, stack):
    """A deployment of the test's own, in the session's Ray (started by `stack`)."""
    import ray
    from redis import Redis

    from serve.stack import start_shards

    name = f"billing_fuzz_{SESSION}"
    database_url = asyncio.run(create_database(settings.database_url, name))
    chosen = settings.with_(
        database_url=database_url,
        redis_prefix=f"fuzz-{SESSION}",
        # A fuzzer is a runaway client by design; the limits have their own tests.
        rate_limit_default=0,
        rate_limit_ingest=0,
        # Runs asked for are queued (the API's part) but not carried out on Ray tasks during the
        # test: their execution is tests/test_invoice_run.py's subject, and costs cores here.
        scheduler_interval_s=3600.0,
    )
    migrate(database_url)
    shards = start_shards(chosen)
    yield chosen
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # the app's lifespan: its engine and Redis pool close
    for shard in shards:
        ray.kill(shard, no_restart=True)
    redis = Redis.from_url(chosen.redis_url)
    for key in redis.scan_iter(match=f"{chosen.redis_prefix}:*", count=1000):
        redis.delete(key)
    redis.close()
    asyncio.run(drop_database(settings.database_url, name))


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_settings: Settings):
    from serve.app import build_app

    schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(fuzz_settings), config=CONFIG)
    seeded = _seed(schema, fuzz_settings)

    @schema.hook
    def flatmap_case(context, case):
        # Now and then the real objects, so paths reach beyond "not found". Valid cases only: in
        # an invalid one the path may be the very part that makes it invalid.
        names = [name for name in case.path_parameters or {} if name in seeded]
        if not names or case.meta is None or not case.meta.generation.mode.is_positive:
            return st.just(case)
        return st.booleans().map(lambda real: _with(case, names, seeded) if real else case)

    @schema.hook
    def filter_failure(context, failure, case, response) -> bool:
        return not _epoch_seconds_for_an_instant(failure, case)

    return schema


# The one kind of failure that is not ours, recognised narrowly.


def _epoch_seconds_for_an_instant(failure, case) -> bool:
    """A number for a date-time (`?since=351`, `"expires_at": 0`), which pydantic reads as Unix
    seconds (its documented lax mode): an instant all the same, not a value we misread."""
    if not isinstance(failure, AcceptedNegativeData):
        return False
    in_query = re.search(r"parameter `([^`]+)` in query", failure.message)
    in_body = re.search(r"in body - violates `type` at /properties/([^/ ]+) ", failure.message)
    if in_query is not None:
        name = in_query.group(1)
        schemas = [p.definition for p in case.operation.query if p.name == name]
        value = (case.query or {}).get(name)
    elif in_body is not None and isinstance(case.body, dict):
        name = in_body.group(1)
        schemas = [body.validation_schema.get("properties", {}).get(name) for body in case.operation.body]
        value = case.body.get(name)
    else:
        return False
    return (
        '"date-time"' in orjson.dumps(schemas).decode()
        and re.fullmatch(r"-?\d+(\.\d+)?", str(value)) is not None
    )


def _with(case, names: list[str], seeded: dict[str, str]):
    case.path_parameters = case.path_parameters | {name: seeded[name] for name in names}
    return case


def _seed(schema, fuzz_settings: Settings) -> dict[str, str]:
    """Two tenants, a finalized invoice of one and a pending wire payment of it."""
    admin = auth(mint(fuzz_settings.jwt_secret, "billing-admin"))

    def call(method: str, path: str, **parts):
        response = schema[path][method].Case(**parts).call(headers=admin)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    for tenant_id, tier in ((OWN_TENANT, "lite"), (OTHER_TENANT, "shared")):
        body = {"tenant_id": tenant_id, "name": tenant_id, "tier": tier, "currency": "usd", "country": "US"}
        call("POST", "/api/v1/tenants", body=body, media_type="application/json")
    period = {
        "tenant_id": OWN_TENANT,
        "period_start": "2025-03-01T00:00:00Z",
        "period_end": "2025-04-01T00:00:00Z",
    }
    invoice = call("POST", "/api/v1/invoices", body=period, media_type="application/json")
    invoice_id = invoice["invoice_id"]
    call("POST", "/api/v1/invoices/{invoice_id}/finalize", path_parameters={"invoice_id": invoice_id})
    payment = call(
        "POST",
        "/api/v1/payments",
        body={"invoice_id": invoice_id, "payment_method": "wire"},
        media_type="application/json",
        headers={"Idempotency-Key": f"fuzz-{uuid.uuid4()}"},
    )
    return {"tenant_id": OWN_TENANT, "invoice_id": invoice_id, "payment_id": payment["payment_id"]}


@pytest.fixture(scope="module")
def tally(request):
    class Summary:
        def pytest_terminal_summary(self, terminalreporter) -> None:
            terminalreporter.write_line(TALLY.line())

    request.config.pluginmanager.register(Summary(), f"fuzz-summary-{SESSION}")
    yield TALLY
    print(TALLY.line())


def _fuzz(operation, token: str, examples: int, tally: Tally) -> None:
    """Schemathesis's phases on one operation, as its pytest plugin runs them: the spec's examples,
    the coverage cases (boundaries, wrong types, missing fields) and `examples` random cases,
    valid and invalid; each called with the token and checked."""

    def check(case) -> None:
        headers = auth(token)
        try:
            response = case.call(headers=headers)
        except Exception:
            # In-process, an exception the app did not handle reaches us instead of its 500.
            tally.server_errors.append(f"{case.operation.label}: unhandled exception")
            raise
        tally.record(case, response)
        case.validate_response(response, headers=headers, transport_kwargs={"headers": headers})

    config = HypothesisTestConfig(
        project=operation.schema.config,
        modes=[HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE, HypothesisTestMode.FUZZING],
        settings=hypothesis.settings(HYPOTHESIS, max_examples=examples),
    )
    create_test(operation=operation, test_func=check, config=config)()


# Every route (serve/access.py refuses to start unless its table and the routes agree).
OPERATIONS = sorted(set(ACCESS) | PUBLIC, key=lambda op: (op[1], op[0]))
TENANT_OPERATIONS = [op for op in OPERATIONS if op in ACCESS and "tenant" in ACCESS[op].roles]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_as_billing_admin(fuzz_schema, fuzz_settings, tally, method, path):
    token = mint(fuzz_settings.jwt_secret, "billing-admin")
    _fuzz(fuzz_schema[path][method], token, ADMIN_EXAMPLES, tally)


@pytest.mark.parametrize(
    ("method", "path"), TENANT_OPERATIONS, ids=[f"{m} {p}" for m, p in TENANT_OPERATIONS]
)
def test_fuzz_as_tenant(fuzz_schema, fuzz_settings, tally, method, path):
    token = mint(fuzz_settings.jwt_secret, "tenant", tenant_id=OWN_TENANT)
    _fuzz(fuzz_schema[path][method], token, TENANT_EXAMPLES, tally)


def test_every_operation_was_fuzzed(fuzz_schema, tally):
    """Runs after the tests above (file order): they reached every operation of the spec."""
    if not tally.examples:
        pytest.skip("the fuzzing tests above were not selected")
    operations = {result.ok().label for result in fuzz_schema.get_all_operations()}
    assert operations == {f"{method} {path}" for method, path in OPERATIONS}
    assert set(tally.examples) == operations, f"not fuzzed: {sorted(operations - set(tally.examples))}"
    assert sum(tally.examples.values()) >= len(operations) * 2
    assert tally.server_errors == []
    print(tally.line())


# Regressions the fuzzer found, replayed against the session's stack: each request is refused, so
# it changes nothing there (the credit note's invoice is the test's own).


def test_a_run_of_year_zero_is_refused_naming_the_period(api, tokens):
    response = api.post(
        "/api/v1/invoice-runs", json={"period": "0000-01"}, headers=auth(tokens["billing-admin"])
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["period"]


def test_a_revenue_report_from_year_zero_is_refused_naming_the_month(api, tokens):
    response = api.get(
        "/api/v1/reports/revenue",
        params={"currency": "AAA", "from": "0000-01"},
        headers=auth(tokens["finance"]),
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["from"]


def test_a_credit_note_beyond_any_amount_is_refused_naming_the_amount(api, tokens):
    # 1e32 overflowed the 34 digits money is computed in: a 500 instead of a 422.
    admin = auth(tokens["billing-admin"])
    invoice_id = finalized_lite_invoice(api, tokens, "fuzz-credit")["invoice_id"]
    response = api.post(
        f"/api/v1/invoices/{invoice_id}/credit-notes", json={"reason": "0", "amount": 1e32}, headers=admin
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["amount"]
    notes = api.get(f"/api/v1/invoices/{invoice_id}/credit-notes", headers=admin).json()["credit_notes"]
    assert notes == []


def test_a_nul_character_in_a_query_is_refused_naming_the_parameter(api, tokens):
    # PostgreSQL text cannot hold U+0000: its refusal was a 500 on every route that looked it up.
    response = api.get("/api/v1/reports/churn?model_version=%00", headers=auth(tokens["finance"]))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["model_version"]


def test_a_nul_character_in_a_path_is_refused_naming_the_parameter(api, tokens):
    response = api.get("/api/v1/tenants/a%00b/pricing", headers=auth(tokens["billing-admin"]))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["tenant_id"]


def test_a_nul_character_in_a_body_is_refused_and_nothing_is_stored(api, tokens):
    tenant_id = f"fuzz-nul-{uuid.uuid4().hex[:8]}"
    body = {"tenant_id": tenant_id, "name": "a\u0000b", "tier": "shared", "currency": "usd", "country": "US"}
    admin = auth(tokens["billing-admin"])
    response = api.post("/api/v1/tenants", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body"]
    assert api.get(f"/api/v1/tenants/{tenant_id}", headers=admin).status_code == 404


def test_live_usage_of_a_tenant_id_that_cannot_exist_is_refused_not_unavailable(api, tokens):
    # It reached the shards, failed there, and came back as "503, retry shortly".
    response = api.get("/api/v1/usage/a%00b", headers=auth(tokens["viewer"]))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["path.tenant_id"]


def test_a_405_allows_every_method_the_path_serves(api, tokens):
    # GET and POST /invoice-runs are two routes; Starlette's 405 named only the first one's.
    response = api.request("OPTIONS", "/api/v1/invoice-runs", headers=auth(tokens["billing-admin"]))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/problem+json"


def test_a_post_to_a_get_only_invoice_path_is_405_not_a_422_from_the_actions(api, tokens):
    # POST /invoices/{id}/pdf was taken by POST /invoices/{id}/{action}, whose `action` then
    # failed validation (issue 15).
    invoice_id = "00000000-0000-4000-8000-000000000000"
    response = api.post(f"/api/v1/invoices/{invoice_id}/pdf", headers=auth(tokens["billing-admin"]))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET"
    unknown = api.post(f"/api/v1/invoices/{invoice_id}/mark-lost", headers=auth(tokens["billing-admin"]))
    assert unknown.status_code == 404, unknown.text
    action = api.post(f"/api/v1/invoices/{invoice_id}/void", headers=auth(tokens["billing-admin"]))
    assert action.status_code == 404 and action.json()["title"] != "Not Found", action.text


def test_the_openapi_document_is_whole(api):
    # The usage body referred to #/components/schemas/UsageRecord, which did not exist; no route
    # declared its problem+json answers (issue 15).
    spec = api.get("/openapi.json").json()

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(spec)):
        target = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in target, f"dangling {ref}"
            target = target[part]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {code: answer for code, answer in operation["responses"].items() if code >= "400"}
            assert "503" in errors, f"{method} {path} declares no 503"
            for code, answer in errors.items():
                assert list(answer["content"]) == ["application/problem+json"], f"{method} {path} {code}"
    usage = spec["paths"]["/api/v1/usage"]["post"]["responses"]
    assert {"401", "403", "413", "415", "422", "429", "503"} <= set(usage)


def test_a_run_with_a_number_for_a_flag_is_refused_naming_the_flag(api, tokens):
    # `"pdfs": 0.0` was read as false. The month has not ended either: nothing would be run.
    response = api.post(
        "/api/v1/invoice-runs", json={"period": "2999-01", "pdfs": 0.0}, headers=auth(tokens["finance"])
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["pdfs"]


def test_a_grant_with_a_fractional_priority_is_refused_naming_the_priority(api, tokens):
    # `"priority": 1.0` was read as 1. The tenant does not exist either: nothing would be granted.
    grant = {"amount": "1.00", "kind": "promotional", "priority": 1.0}
    response = api.post(
        f"/api/v1/tenants/fuzz-none-{uuid.uuid4().hex[:8]}/credits",
        json=grant,
        headers=auth(tokens["finance"]),
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["priority"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("get", "/api/v1/audit?since=0.0", None, "query.since"),
        ("get", "/api/v1/usage/acme?from=1700000000", None, "query.from"),
        ("post", "/api/v1/tenants/fuzz-none/credits", {"amount": "1.00", "kind": "promotional", "expires_at": 1.8e9}, "expires_at"),
    ],
)
def test_an_instant_given_as_a_number_is_refused_naming_it(api, tokens, method, path, body, field):
    # Pydantic read `?since=0.0` as Unix seconds (1970-01-01); the schema asks for RFC 3339 text.
    response = api.request(method, path, json=body, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert "RFC 3339" in response.json()["errors"][0]["message"]


def test_a_reused_idempotency_key_is_refused_naming_the_header(api, tokens):
    # Found reading the errors the fuzzer checks: this 422 alone named no field.
    admin = auth(tokens["billing-admin"])
    invoice_id = finalized_lite_invoice(api, tokens, "fuzz-key")["invoice_id"]
    key = {"Idempotency-Key": f"fuzz-{uuid.uuid4()}"}
    wire = {"invoice_id": invoice_id, "payment_method": "wire"}
    assert api.post("/api/v1/payments", json=wire, headers=admin | key).status_code == 201
    card = {"invoice_id": invoice_id, "payment_method": "stripe"}
    response = api.post("/api/v1/payments", json=card, headers=admin | key)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["Idempotency-Key"]
