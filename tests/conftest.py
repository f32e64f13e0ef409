"""One real stack per test session: PostgreSQL, Redis, Ray (started once), shard actors, Serve.

DATABASE_URL / REDIS_URL point the suite at running servers (as .ci/run does); a fresh database
and a fresh Redis key prefix keep each session apart. Unset, the embedded servers are used.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.database import create_database, drop_database
from infra.settings import Settings
from tests.data_dirs import own_data_dir
from tests.ports import free_port
from tests.providers.fixtures import paypal_server, stripe_server, vault_server

__all__ = ["paypal_server", "stripe_server", "vault_server"]  # session fixtures for every test

SESSION = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def settings(stripe_server, paypal_server) -> Iterator[Settings]:
    with own_data_dir("test-data") as data_dir:  # not under tmp_path: see tests/data_dirs.py
        yield from _session_settings(data_dir, stripe_server, paypal_server)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A data dir for a test's own embedded servers (not under tmp_path: tests/data_dirs.py)."""
    with own_data_dir("embedded") as path:
        yield path


def _session_settings(data_dir: Path, stripe_server, paypal_server) -> Iterator[Settings]:
    from infra.embedded import resolve

    base = Settings.from_env()
    database_name = f"billing_test_{SESSION}"
    database_url = (
        asyncio.run(create_database(base.database_url, database_name)) if base.database_url else None
    )
    chosen = base.with_(
        data_dir=data_dir,
        database_url=database_url,
        redis_prefix=f"test-{SESSION}",
        http_port=free_port(),  # also where PayPal sends a payer back (public_url unset)
        shards=int(os.environ.get("BILLING_SHARDS", "2")),
        flush_interval_s=0.2,
        # The session's replicas carry out runs asked for through the API, and take over a run
        # whose owner went silent for 3 s; the monthly schedule is tested with its own clock.
        auto_invoice=False,
        scheduler_interval_s=0.5,
        run_lease_s=3.0,
        # Webhooks go to receivers on 127.0.0.1, and failed ones are retried within a second.
        webhook_allow_private=True,
        webhook_retry_base_s=0.5,
        webhook_retry_max_s=2.0,
        notifications_interval_s=1.0,  # as in production: new events wake the workers at once
        # The local Stripe and PayPal servers (payments/sandbox) stand in for the providers.
        stripe_api_key=stripe_server.api_key,
        stripe_api_base=stripe_server.url,
        stripe_webhook_secret=stripe_server.webhook_secret,
        paypal_client_id=paypal_server.client_id,
        paypal_client_secret=paypal_server.client_secret,
        paypal_base_url=paypal_server.url,
        paypal_webhook_id=paypal_server.webhook_id,
        paypal_cert_url_prefix=paypal_server.url + "/",
        paypal_root_certificate=str(_pem(data_dir / "paypal-root.pem", paypal_server.root_certificate)),
    )
    yield resolve(chosen)
    if base.database_url:
        asyncio.run(drop_database(base.database_url, database_name))
    if not (base.database_url and base.redis_url):
        from infra.embedded import stop_embedded

        stop_embedded(data_dir)  # the embedded servers this session started


def _pem(path: Path, certificate) -> Path:
    from cryptography.hazmat.primitives.serialization import Encoding

    path.write_bytes(certificate.public_bytes(Encoding.PEM))
    return path


@pytest.fixture(scope="session")
def stack(settings: Settings):
    import ray

    from serve.stack import start_stack

    # HAProxy's own stats and metrics ports are fixed by default; a session must not collide
    # with a `billing up` running on the same machine.
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    # The dashboard is where `ray job submit` sends jobs (tests/test_ray_jobs.py).
    running = start_stack(settings, dashboard=True, dashboard_port=free_port())
    yield running
    running.flush()
    ray.shutdown()  # serve.shutdown() waits 30 s on the controller; the session is ending anyway


@pytest.fixture(scope="session")
def tokens(settings: Settings) -> dict[str, str]:
    from serve.auth import ROLES, mint

    made = {role: mint(settings.jwt_secret, role) for role in ROLES if role != "tenant"}
    made["tenant"] = mint(settings.jwt_secret, "tenant", tenant_id="tenant-a")
    return made


@pytest.fixture(scope="session")
def api(stack) -> httpx.Client:
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def register_tenant(api, tokens, tenant_id: str, **details: str) -> str:
    """Register a tenant through the API (a US shared-tier USD buyer unless `details` say
    otherwise); its id."""
    body = {"tenant_id": tenant_id, "name": tenant_id, "tier": "shared", "currency": "usd", "country": "US"}
    response = api.post("/api/v1/tenants", json=body | details, headers=auth(tokens["billing-admin"]))
    assert response.status_code == 201, response.text
    return tenant_id


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true, as .ci/run is run) a skipped test fails: CI installs everything the suite
    needs, so a skip there is a missing install step hiding behind a green run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped in CI, where nothing may skip: {reason}"
