"""POST /api/v1/usage through Ray Serve, Redis Streams and the shard actors into PostgreSQL."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import ray

from tests.conftest import auth
from tests.metering_support import make_events, post_batches, stored, wait_settled


def record(tenant: str, **usage) -> dict:
    return {
        "tenant_id": tenant,
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": usage,
        "event_id": uuid.uuid4().hex,
    }


def live_total(api, token: str, tenant: str, meter: str) -> Decimal:
    response = api.get(f"/api/v1/usage/{tenant}", headers=auth(token))
    assert response.status_code == 200, response.text
    return sum((Decimal(row[meter]) for row in response.json()["rows"]), Decimal(0))


def test_single_event_is_visible_live_within_a_second(api, tokens):
    tenant = f"single-{uuid.uuid4().hex[:6]}"
    response = api.post(
        "/api/v1/usage", json=record(tenant, cpu_seconds="1.25", executions=3), headers=auth(tokens["kernel"])
    )
    assert response.status_code == 202
    assert response.json() == {"queued": True, "accepted": 1, "duplicates": 0}
    deadline = time.monotonic() + 1.0
    while live_total(api, tokens["viewer"], tenant, "cpu_seconds") != Decimal("1.25"):
        assert time.monotonic() < deadline, "usage not visible within a second"
        time.sleep(0.02)
    assert live_total(api, tokens["viewer"], tenant, "executions") == 3


def test_batch_totals_per_tenant_and_hour_are_exact(api, tokens, stack):
    tenants = [f"batch-{i}-{uuid.uuid4().hex[:4]}" for i in range(5)]
    events, truth = make_events(3000, tenants, seed=7)
    assert post_batches(api, tokens["kernel"], events) == (3000, 0)
    wait_settled(stack)
    assert stored(stack.settings, tenants) == truth
    day = api.get(
        f"/api/v1/usage/{tenants[0]}", params={"granularity": "day"}, headers=auth(tokens["finance"])
    )
    expected = sum((q[0] for (t, _), q in truth.items() if t == tenants[0]), Decimal(0))
    assert sum(Decimal(r["cpu_seconds"]) for r in day.json()["rows"]) == expected


def test_duplicates_are_counted_once(api, tokens, stack):
    tenant = f"dup-{uuid.uuid4().hex[:6]}"
    first = record(tenant, network_gb="0.5")
    assert api.post("/api/v1/usage", json=first, headers=auth(tokens["kernel"])).json()["duplicates"] == 0
    again = api.post(
        "/api/v1/usage",
        json={"events": [first, first, record(tenant, network_gb="1")]},
        headers=auth(tokens["kernel"]),
    )
    assert again.json() == {"queued": True, "accepted": 1, "duplicates": 2}
    no_id = {k: v for k, v in record(tenant, network_gb="2").items() if k != "event_id"}
    replies = [api.post("/api/v1/usage", json=no_id, headers=auth(tokens["kernel"])).json() for _ in range(2)]
    assert [r["duplicates"] for r in replies] == [0, 1]
    wait_settled(stack)
    assert live_total(api, tokens["viewer"], tenant, "network_gb") == Decimal("3.5")


def test_unknown_tenant_is_kept_and_reported_unassigned(api, tokens, stack):
    tenant = f"unregistered-{uuid.uuid4().hex[:6]}"
    api.post("/api/v1/usage", json=record(tenant, storage_gb_hours="7.5"), headers=auth(tokens["kernel"]))
    wait_settled(stack)
    groups = api.get("/api/v1/usage", params={"group_by": "tenant"}, headers=auth(tokens["finance"])).json()[
        "groups"
    ]
    mine = [g for g in groups if g["tenant_id"] == tenant]
    assert mine == [
        {
            "tenant_id": tenant,
            "tier": "unassigned",
            "cpu_seconds": "0",
            "memory_gb_hours": "0",
            "storage_gb_hours": "7.5",
            "network_gb": "0",
            "executions": "0",
        }
    ]
    tiers = api.get("/api/v1/usage", params={"group_by": "tier"}, headers=auth(tokens["finance"])).json()[
        "groups"
    ]
    assert Decimal(next(g for g in tiers if g["tier"] == "unassigned")["storage_gb_hours"]) >= Decimal("7.5")


def test_registered_tenant_usage_groups_under_its_tier(api, tokens, stack):
    tenant = f"lite-{uuid.uuid4().hex[:6]}"
    body = {
        "tenant_id": tenant,
        "name": "Lite Co",
        "tier": "lite",
        "currency": "eur",
        "country": "DE",
        "vat_id": "DE136695976",
        "locale": "de",
    }
    created = api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"]))
    assert created.status_code == 201, created.text
    assert api.post("/api/v1/tenants", json=body, headers=auth(tokens["billing-admin"])).status_code == 200
    conflict = api.post(
        "/api/v1/tenants", json={**body, "tier": "zero"}, headers=auth(tokens["billing-admin"])
    )
    assert conflict.status_code == 409
    api.post("/api/v1/usage", json=record(tenant, memory_gb_hours="2"), headers=auth(tokens["kernel"]))
    wait_settled(stack)
    groups = api.get("/api/v1/usage", params={"group_by": "tenant"}, headers=auth(tokens["finance"])).json()[
        "groups"
    ]
    assert next(g for g in groups if g["tenant_id"] == tenant)["tier"] == "lite"


def test_a_shard_killed_mid_stream_loses_and_doubles_nothing(api, tokens, stack):
    tenants = [f"crash-{i}-{uuid.uuid4().hex[:4]}" for i in range(40)]
    events, truth = make_events(100_000, tenants, seed=42, hours=20)
    half = len(events) // 2
    post_batches(api, tokens["kernel"], events[:half])
    with ThreadPoolExecutor(1) as pool:
        rest = pool.submit(post_batches, api, tokens["kernel"], events[half:])
        time.sleep(0.5)  # the second half is streaming in
        ray.kill(stack.shards[0], no_restart=False)  # Ray restarts it; its memory is gone
        assert rest.result() == (len(events) - half, 0)
    # The kernel retries a batch it is unsure about: counted once all the same.
    assert post_batches(api, tokens["kernel"], events[:1000]) == (0, 1000)
    wait_settled(stack)
    assert stored(stack.settings, tenants) == truth
    totals = api.get("/api/v1/usage", params={"group_by": "tenant"}, headers=auth(tokens["finance"])).json()
    for group in (g for g in totals["groups"] if g["tenant_id"] in tenants):
        expected = sum((q[1] for (t, _), q in truth.items() if t == group["tenant_id"]), Decimal(0))
        assert Decimal(group["memory_gb_hours"]) == expected


def test_a_redis_that_forgot_the_script_still_counts_each_event_once(api, tokens, stack):
    import redis

    tenant = f"noscript-{uuid.uuid4().hex[:6]}"
    redis.Redis.from_url(stack.settings.redis_url).script_flush()
    first = record(tenant, cpu_seconds="2")
    assert api.post("/api/v1/usage", json=first, headers=auth(tokens["kernel"])).json()["accepted"] == 1
    assert api.post("/api/v1/usage", json=first, headers=auth(tokens["kernel"])).json()["duplicates"] == 1
    wait_settled(stack)
    assert live_total(api, tokens["viewer"], tenant, "cpu_seconds") == Decimal(2)


def test_an_unparseable_entry_is_set_aside_and_the_shard_goes_on(api, tokens, stack):
    import redis

    from actors.usage_log import dead_letter_key, stream_key

    client = redis.Redis.from_url(stack.settings.redis_url)
    prefix = stack.settings.redis_prefix
    dead_before = client.xlen(dead_letter_key(prefix, 0)) if client.exists(dead_letter_key(prefix, 0)) else 0
    client.xadd(stream_key(prefix, 0), {"e": "tenant\tnot-an-hour\t1\t\t\t\t"})
    client.xadd(stream_key(prefix, 0), {"e": "tenant\t3600\t1\t\t\t\t\t9"})  # a sixth quantity
    tenant = f"after-poison-{uuid.uuid4().hex[:6]}"
    for n in range(8):  # some of these land on shard 0, behind the bad entry
        api.post(
            "/api/v1/usage", json=record(f"{tenant}-{n}", cpu_seconds="1"), headers=auth(tokens["kernel"])
        )
    wait_settled(stack)
    assert client.xlen(dead_letter_key(prefix, 0)) == dead_before + 2
    totals = [live_total(api, tokens["viewer"], f"{tenant}-{n}", "cpu_seconds") for n in range(8)]
    assert totals == [Decimal(1)] * 8


def test_a_presumed_dead_instance_still_running_can_neither_count_nor_steal(api, tokens, stack):
    from actors.usage_shard import ShardConfig, UsageShard

    tenants = [f"fenced-{i}-{uuid.uuid4().hex[:4]}" for i in range(10)]
    events, truth = make_events(6000, tenants, seed=5)
    post_batches(api, tokens["kernel"], events[:3000])
    # A second instance of shard 0, as when Ray restarts an actor whose old process lives on.
    impostor = UsageShard.options(name=f"impostor-{uuid.uuid4().hex[:4]}", max_restarts=0).remote(
        0, ShardConfig.of(stack.settings)
    )
    ray.get(impostor.ready.remote())
    post_batches(api, tokens["kernel"], events[3000:])
    # The real shard 0 finds itself superseded and exits; Ray restarts it, it claims the stream
    # back, and the impostor (not restartable) is superseded in turn.
    deadline = time.monotonic() + 60
    while True:
        try:
            ray.get(impostor.status.remote(), timeout=5)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            break
        assert time.monotonic() < deadline, "the impostor was never fenced off"
        time.sleep(0.2)
    wait_settled(stack)
    assert stored(stack.settings, tenants) == truth


def test_two_tenants_may_use_the_same_event_id(api, tokens, stack):
    acme, globex = (f"{name}-{uuid.uuid4().hex[:6]}" for name in ("acme", "globex"))
    shared_id = "42"
    for tenant, cpu in ((acme, "1"), (globex, "99")):
        body = {**record(tenant, cpu_seconds=cpu), "event_id": shared_id}
        assert api.post("/api/v1/usage", json=body, headers=auth(tokens["kernel"])).json()["accepted"] == 1
    wait_settled(stack)
    assert live_total(api, tokens["viewer"], globex, "cpu_seconds") == 99


def test_large_exact_quantities_come_back_to_the_last_digit(api, tokens, stack):
    tenant = f"big-{uuid.uuid4().hex[:6]}"
    quantity = "123456789012345678.123456789012"
    api.post("/api/v1/usage", json=record(tenant, storage_gb_hours=quantity), headers=auth(tokens["kernel"]))
    wait_settled(stack)
    rows = api.get(f"/api/v1/usage/{tenant}", headers=auth(tokens["viewer"])).json()["rows"]
    assert [row["storage_gb_hours"] for row in rows] == [quantity]


def test_an_event_id_is_remembered_until_its_event_can_no_longer_be_accepted(api, tokens, stack):
    import redis

    from actors.sharding import shard_of
    from actors.usage_log import seen_key

    tenant = f"ttl-{uuid.uuid4().hex[:6]}"
    body = record(tenant, executions=1)
    api.post("/api/v1/usage", json=body, headers=auth(tokens["kernel"]))
    settings = stack.settings
    hour = int(datetime.fromisoformat(body["timestamp"]).timestamp()) // 3600 * 3600
    key = seen_key(settings.redis_prefix, shard_of(tenant, settings.shards), hour)
    client = redis.Redis.from_url(settings.redis_url)
    assert client.sismember(key, f"{tenant}|{body['event_id']}")
    # The id's set lives until the late window has closed behind the end of the event's hour.
    expires = time.time() + client.ttl(key)
    assert expires > hour + 3600 + settings.late_window_s + settings.future_skew_s
