from __future__ import annotations

import asyncio
import uuid

import pytest

from infra.database import create_database, drop_database, migrate


@pytest.fixture
def own_database(settings):
    """A migrated database of the test's own: the session's replicas deliver nothing from it."""
    name = f"billing_notify_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(settings.database_url, name))
    migrate(url)
    yield url
    asyncio.run(drop_database(settings.database_url, name))
