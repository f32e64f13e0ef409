from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from infra import webhook_store
from infra.database import create_database, create_engine, drop_database, migrate
from infra.schema import webhook_endpoints
from infra.settings import Settings


@pytest.fixture
def own_database(settings):
    """A migrated database of the test's own: the session's replicas deliver nothing from it."""
    name = f"billing_notify_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(settings.database_url, name))
    migrate(url)
    yield url
    asyncio.run(drop_database(settings.database_url, name))


@pytest.fixture(autouse=True)
def _endpoints_deleted_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """The endpoints a test made in the session database are deleted after it, as their owner
    would: their receivers stop with the test, and every later event of their tenants (the
    session's invoice runs invoice every tenant) would be retried to a closed port by both
    replicas every two seconds until the session ends (after tests/notifications and
    tests/test_invoice_run.py, 34% of a core for the two replicas at rest instead of 16%)."""
    if "stack" not in request.fixturenames:  # the session database is migrated with the stack
        yield
        return
    settings: Settings = request.getfixturevalue("settings")
    before = asyncio.run(_endpoint_ids(settings))
    yield
    asyncio.run(_delete_endpoints(settings, asyncio.run(_endpoint_ids(settings)) - before))


async def _endpoint_ids(settings: Settings) -> set[uuid.UUID]:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return set((await conn.execute(select(webhook_endpoints.c.endpoint_id))).scalars())
    finally:
        await engine.dispose()


async def _delete_endpoints(settings: Settings, endpoint_ids: set[uuid.UUID]) -> None:
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            for endpoint_id in endpoint_ids:
                await webhook_store.delete_endpoint(conn, endpoint_id)
    finally:
        await engine.dispose()
