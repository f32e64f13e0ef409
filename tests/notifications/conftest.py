from __future__ import annotations

import asyncio
import uuid

import pytest

from infra.database import migrate
from tests.conftest import _create_database, _drop_database


@pytest.fixture
def own_database(settings):
    """A migrated database of the test's own: the session's replicas deliver nothing from it."""
    name = f"billing_notify_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(_create_database(settings.database_url, name))
    migrate(url)
    yield url
    asyncio.run(_drop_database(settings.database_url, name))
