"""While Redis or PostgreSQL is unreachable, ingest answers 503 with Retry-After, never 500."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from starlette.testclient import TestClient

from serve.app import build_app
from serve.auth import mint
from tests.conftest import free_port


def _post(client: TestClient, secret: str):
    body = {
        "tenant_id": "acme",
        "timestamp": datetime.now(UTC).isoformat(),
        "usage": {"cpu_seconds": 1},
        "event_id": uuid.uuid4().hex,
    }
    return client.post(
        "/api/v1/usage", json=body, headers={"authorization": f"Bearer {mint(secret, 'kernel')}"}
    )


def test_redis_down_is_503_with_retry_after(settings):
    down = settings.with_(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(build_app(down)) as client:
        response = _post(client, settings.jwt_secret)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["title"] == "Redis is unreachable"


def test_postgres_down_is_503_with_retry_after(settings):
    down = settings.with_(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with TestClient(build_app(down)) as client:
        deadline = time.monotonic() + 10
        while (response := _post(client, settings.jwt_secret)).status_code == 202:
            assert time.monotonic() < deadline, "ingest kept accepting with PostgreSQL down"
            time.sleep(0.2)
        ready = client.get("/readyz")
    assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
    assert response.json()["title"] == "PostgreSQL is unreachable"
    assert ready.status_code == 503 and ready.json()["checks"]["postgresql"] is False


def test_reads_with_postgres_down_are_503_not_500(settings):
    down = settings.with_(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    viewer = {"authorization": f"Bearer {mint(settings.jwt_secret, 'viewer')}"}
    with TestClient(build_app(down)) as client:
        tenant = client.get("/api/v1/tenants/acme", headers=viewer)
        usage = client.get("/api/v1/usage/acme", headers=viewer)
    assert tenant.status_code == 503 and tenant.headers["retry-after"] == "5"
    assert tenant.headers["content-type"] == "application/problem+json"
    assert usage.status_code == 503
