"""Outbound webhooks and alerts on the real stack, delivered to a real HTTP receiver on 127.0.0.1
that verifies every request with the `standardwebhooks` library (issue 17)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text, update

from infra.schema import webhook_deliveries
from serve.auth import mint
from tests.conftest import auth, register_tenant
from tests.notifications.support import Receiver, fetch, record_events, run_sql


@pytest.fixture
def receiver():
    made = Receiver().start()
    yield made
    made.stop()


def tenant_token(settings, tenant_id: str) -> dict[str, str]:
    return auth(mint(settings.jwt_secret, "tenant", tenant_id=tenant_id))


def endpoint(api, headers, receiver: Receiver, event_types: list[str], **extra) -> dict:
    response = api.post(
        "/api/v1/webhook-endpoints", json={"url": receiver.url, "event_types": event_types} | extra, headers=headers
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["secret"].startswith("whsec_")
    receiver.secrets.append(made["secret"])
    return made


def test_a_spend_alert_crossed_by_usage_arrives_once_signed_within_5_s(api, tokens, settings, receiver):
    tenant = register_tenant(api, tokens, f"wh-spend-{uuid.uuid4().hex[:8]}")  # shared: $0.05 per CPU-hour
    own = tenant_token(settings, tenant)
    endpoint(api, own, receiver, ["spend.threshold_crossed"])
    alert = api.post(f"/api/v1/tenants/{tenant}/alerts", json={"kind": "spend", "threshold": "1.00"}, headers=own)
    assert alert.status_code == 201, alert.text
    assert alert.json()["currency"] == "usd" and alert.json()["threshold"] == "1.00"

    below = {"tenant_id": tenant, "timestamp": datetime.now(UTC).isoformat(), "usage": {"cpu_seconds": "36000"}}
    assert api.post("/api/v1/usage", json=below, headers=auth(tokens["kernel"])).status_code == 202  # $0.50
    time.sleep(1.5)
    assert receiver.all() == []  # under the threshold: nothing
    crossing = below | {"usage": {"cpu_seconds": "54000"}}  # $0.75 more: $1.25
    assert api.post("/api/v1/usage", json=crossing, headers=auth(tokens["kernel"])).status_code == 202
    sent = time.monotonic()

    [first] = receiver.wait_for(1, timeout_s=10)
    assert first.at - sent < 5.0, f"arrived {first.at - sent:.2f} s after the usage"
    assert first.error is None, first.error
    assert first.payload["type"] == "spend.threshold_crossed"
    assert first.payload["id"] == first.headers["webhook-id"]
    data = first.payload["data"]
    assert (data["tenant_id"], data["threshold"], data["currency"]) == (tenant, "1.00", "usd")
    assert Decimal(data["amount"]) == Decimal("1.25")
    more = below | {"usage": {"cpu_seconds": "72000"}}  # and more usage in the same period fires nothing
    assert api.post("/api/v1/usage", json=more, headers=auth(tokens["kernel"])).status_code == 202
    time.sleep(3)
    assert len(receiver.all()) == 1


def test_a_receiver_answering_500_then_200_gets_the_same_webhook_id_twice_and_nothing_more(
    api, tokens, settings, receiver
):
    tenant = register_tenant(api, tokens, f"wh-retry-{uuid.uuid4().hex[:8]}")
    made = endpoint(api, auth(tokens["billing-admin"]), receiver, ["*"], tenant_id=tenant)
    receiver.answers = [500]
    [event_id] = record_events(settings, [("invoice.paid", tenant, {"invoice_id": "inv-1", "total": Decimal("12.70")})])

    first, second = receiver.wait_for(2, timeout_s=15)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    assert (first.answered, second.answered) == (500, 200)
    assert first.error is None and second.error is None
    assert second.payload == {
        "id": event_id,
        "type": "invoice.paid",
        "created_at": second.payload["created_at"],
        "data": {"invoice_id": "inv-1", "total": "12.70"},
    }
    time.sleep(3)
    assert len(receiver.all()) == 2

    listed = api.get(
        "/api/v1/webhook-deliveries", params={"endpoint_id": made["id"]}, headers=tenant_token(settings, tenant)
    )
    assert listed.status_code == 200, listed.text
    [delivery] = listed.json()["deliveries"]
    assert (delivery["event_id"], delivery["status"]) == (event_id, "delivered")
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]

    replayed = api.post(f"/api/v1/webhook-deliveries/{delivery['id']}/replay", headers=auth(tokens["billing-admin"]))
    assert replayed.status_code == 202, replayed.text
    third = receiver.wait_for(3)[2]
    assert third.headers["webhook-id"] == event_id and third.error is None


def test_an_event_of_a_rolled_back_transaction_never_arrives(api, tokens, settings, receiver):
    tenant = register_tenant(api, tokens, f"wh-rollback-{uuid.uuid4().hex[:8]}")
    endpoint(api, auth(tokens["billing-admin"]), receiver, ["*"], tenant_id=tenant)
    record_events(settings, [("invoice.voided", tenant, {"invoice_id": "rolled-back"})], rollback=True)
    [marker] = record_events(settings, [("invoice.finalized", tenant, {"invoice_id": "committed"})])
    receiver.wait_for(1)
    time.sleep(1.5)  # several delivery rounds after the committed one
    assert [r.headers["webhook-id"] for r in receiver.all()] == [marker]


def test_a_delivery_whose_worker_died_is_taken_over_when_its_lease_ends(api, tokens, settings, receiver):
    tenant = register_tenant(api, tokens, f"wh-lease-{uuid.uuid4().hex[:8]}")
    made = endpoint(api, auth(tokens["billing-admin"]), receiver, ["payment.succeeded"], tenant_id=tenant)

    async def claimed_by_a_dead_worker() -> str:
        from infra.database import create_engine
        from notifications import outbox

        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as conn:  # as if a worker claimed it in this commit, then died
                event_id = await outbox.record(conn, "payment.succeeded", tenant, {"payment_id": "p-1"})
                await conn.execute(
                    update(webhook_deliveries)
                    .where(webhook_deliveries.c.event_id == event_id)
                    .values(lease_owner="webhooks:dead", lease_until=text("now() + interval '2 seconds'"))
                )
            return event_id
        finally:
            await engine.dispose()

    started = time.monotonic()
    event_id = asyncio.run(claimed_by_a_dead_worker())
    [got] = receiver.wait_for(1, timeout_s=15)
    assert got.at - started >= 1.5, "sent before the dead worker's lease ended"
    assert got.headers["webhook-id"] == event_id and got.error is None
    deadline = time.monotonic() + 5  # the worker records the outcome just after the answer
    while True:
        listed = api.get("/api/v1/webhook-deliveries", params={"endpoint_id": made["id"]}, headers=auth(tokens["billing-admin"]))
        [delivery] = listed.json()["deliveries"]
        if delivery["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delivery["status"] == "delivered" and len(delivery["attempts"]) == 1


def test_a_rotated_secret_keeps_the_old_signature_beside_the_new_one(api, tokens, settings, receiver):
    tenant = register_tenant(api, tokens, f"wh-rotate-{uuid.uuid4().hex[:8]}")
    own = tenant_token(settings, tenant)
    made = endpoint(api, own, receiver, ["credit_note.created"])
    rotated = api.post(f"/api/v1/webhook-endpoints/{made['id']}/rotate-secret", headers=own)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] != made["secret"] and rotated.json()["previous_secret_expires_at"]
    record_events(settings, [("credit_note.created", tenant, {"credit_note_id": "cn-1"})])
    [got] = receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    from standardwebhooks import Webhook

    for secret in (made["secret"], rotated.json()["secret"]):  # a receiver with either verifies
        Webhook(secret).verify(got.body, got.headers)


def test_a_forecast_alert_fires_when_the_trend_crosses_the_threshold_mid_month(api, tokens, settings, receiver):
    """A fixed clock: 10 March 2025, noon. No usage so far; the forecast says 10 CPU-hours ($0.50)
    a day from the 11th, so the month ends at 21 x $0.50 = $10.50 and crosses $5.00 on the 20th."""
    tenant = register_tenant(api, tokens, f"wh-forecast-{uuid.uuid4().hex[:8]}")
    own = tenant_token(settings, tenant)
    endpoint(api, own, receiver, ["spend.forecast_exceeds_threshold"])
    alert = api.post(f"/api/v1/tenants/{tenant}/alerts", json={"kind": "spend_forecast", "threshold": "5.00"}, headers=own)
    assert alert.status_code == 201, alert.text
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    version = f"test-forecast-{uuid.uuid4().hex[:8]}"
    days = [date(2025, 3, 11) + timedelta(days=i) for i in range(21)]
    run_sql(
        settings,
        text(
            "INSERT INTO forecast_models (version, kind, model, trained_through, params, metrics, path) "
            "VALUES (:v, 'usage', 'test', '2025-03-10', '{}', '{}', '-')"
        ).bindparams(v=version),
    )
    rows = ", ".join(f"(:v, :t, 'cpu_seconds', '{day.isoformat()}', 36000, 30000, 42000)" for day in days)
    run_sql(
        settings,
        text(
            f"INSERT INTO usage_forecasts (model_version, tenant_id, meter, day, quantity, lower, upper) VALUES {rows}"
        ).bindparams(v=version, t=tenant),
    )

    async def evaluate() -> tuple[list[str], list[str]]:
        from serve.services import Services

        services = Services.open(settings)
        try:
            evaluator = services.alert_evaluator()
            return await evaluator.tick(now, forecasts=True), await evaluator.tick(now, forecasts=True)
        finally:
            await services.redis.aclose()
            await services.engine.dispose()

    fired, again = asyncio.run(evaluate())
    assert again == []  # once per period
    [got] = receiver.wait_for(1)
    assert got.error is None and got.headers["webhook-id"] in fired
    data = got.payload["data"]
    assert got.payload["type"] == "spend.forecast_exceeds_threshold"
    assert (data["projected_amount"], data["expected_crossing_date"]) == ("10.50", "2025-03-20")
    assert (data["threshold"], data["currency"], data["model_version"]) == ("5.00", "usd", version)
    assert data["period"]["start"].startswith("2025-03-01")


def test_another_tenant_cannot_see_or_manage_endpoints_or_alerts(api, tokens, settings, receiver):
    owner = register_tenant(api, tokens, f"wh-owner-{uuid.uuid4().hex[:8]}")
    other = register_tenant(api, tokens, f"wh-other-{uuid.uuid4().hex[:8]}")
    mine, theirs = tenant_token(settings, owner), tenant_token(settings, other)
    made = endpoint(api, mine, receiver, ["*"])
    alert = api.post(f"/api/v1/tenants/{owner}/alerts", json={"kind": "usage", "meter": "executions", "threshold": "10"}, headers=mine)
    assert alert.status_code == 201, alert.text
    alert_id = alert.json()["id"]
    refused = [
        api.get(f"/api/v1/webhook-endpoints/{made['id']}", headers=theirs),
        api.delete(f"/api/v1/webhook-endpoints/{made['id']}", headers=theirs),
        api.post(f"/api/v1/webhook-endpoints/{made['id']}/rotate-secret", headers=theirs),
        api.get("/api/v1/webhook-endpoints", params={"tenant_id": owner}, headers=theirs),
        api.get("/api/v1/webhook-deliveries", params={"endpoint_id": made["id"]}, headers=theirs),
        api.post("/api/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["*"], "tenant_id": owner}, headers=theirs),
        api.get(f"/api/v1/tenants/{owner}/alerts", headers=theirs),
        api.post(f"/api/v1/tenants/{owner}/alerts", json={"kind": "spend", "threshold": "1"}, headers=theirs),
        api.delete(f"/api/v1/tenants/{owner}/alerts/{alert_id}", headers=theirs),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused), [r.text for r in refused]
    assert api.get("/api/v1/webhook-endpoints", headers=theirs).json() == {"endpoints": []}
    assert [e["id"] for e in api.get("/api/v1/webhook-endpoints", headers=mine).json()["endpoints"]] == [made["id"]]
    assert api.get(f"/api/v1/webhook-endpoints/{made['id']}", headers=auth(tokens["billing-admin"])).status_code == 200
    assert [a["id"] for a in api.get(f"/api/v1/tenants/{owner}/alerts", headers=mine).json()["alerts"]] == [alert_id]
    assert api.delete(f"/api/v1/tenants/{owner}/alerts/{alert_id}", headers=mine).status_code == 204
    assert api.delete(f"/api/v1/webhook-endpoints/{made['id']}", headers=mine).status_code == 204
    assert api.get(f"/api/v1/webhook-endpoints/{made['id']}", headers=mine).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "spend", "threshold": 1.5}, "threshold"),  # a float-looking JSON number is read exactly...
        ({"kind": "spend", "threshold": "abc"}, "threshold"),
        ({"kind": "spend", "threshold": "-1"}, "threshold"),
        ({"kind": "spend", "threshold": "1.001"}, "threshold"),  # finer than a cent
        ({"kind": "spend", "threshold": "1", "currency": "eur"}, "currency"),
        ({"kind": "usage", "threshold": "1"}, "meter"),
        ({"kind": "loud", "threshold": "1"}, "kind"),
        ({"kind": "spend"}, "threshold"),
    ],
)
def test_bad_alerts_are_refused_naming_the_field(api, tokens, body, field):
    tenant = "wh-bad-alerts"
    api.post(
        "/api/v1/tenants",
        json={"tenant_id": tenant, "name": tenant, "tier": "shared", "currency": "usd", "country": "US"},
        headers=auth(tokens["billing-admin"]),
    )
    response = api.post(f"/api/v1/tenants/{tenant}/alerts", json=body, headers=auth(tokens["billing-admin"]))
    if body.get("threshold") == 1.5:  # ...and accepted: 1.5 is exactly 1.50
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_bad_endpoints_are_refused_naming_the_field(api, tokens):
    admin = auth(tokens["billing-admin"])
    cases = [
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:1/x", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["invoice.eaten"]}, "event_types[0]"),
        ({"url": "http://user:pw@127.0.0.1:1/x", "event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["*"], "tenant_id": "nobody-here"}, "tenant_id"),
    ]
    for body, field in cases:
        response = api.post("/api/v1/webhook-endpoints", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field, body


def test_events_recorded_as_a_batch_fan_out_to_each_endpoint_that_wants_them(api, tokens, settings, receiver):
    """`outbox.record_many` (an invoice run's batch) gives each event the deliveries `record` would:
    the tenant's own endpoints and the platform's, by event type; an event of no tenant only the
    platform's."""
    one, other = (register_tenant(api, tokens, f"wh-batch-{uuid.uuid4().hex[:8]}") for _ in range(2))
    everything = endpoint(api, tenant_token(settings, one), receiver, ["*"])["id"]
    paid_only = endpoint(api, tenant_token(settings, other), receiver, ["invoice.paid"])["id"]
    platform = endpoint(api, auth(tokens["billing-admin"]), receiver, ["invoice.finalized"])["id"]
    events = [
        ("invoice.finalized", one, {"n": 1}),
        ("invoice.paid", other, {"n": 2}),
        ("invoice.finalized", None, {"n": 3}),
        ("invoice.paid", one, {"n": 4}),
        ("invoice.voided", other, {"n": 5}),
    ]
    ids = record_events(settings, events, batch=True)
    query = text("SELECT event_id, endpoint_id::text FROM webhook_deliveries WHERE event_id = ANY(:ids)")
    found = {(ids.index(event), endpoint_id) for event, endpoint_id in fetch(settings, query, ids=ids)}
    assert found == {(0, everything), (0, platform), (1, paid_only), (2, platform), (3, everything)}
