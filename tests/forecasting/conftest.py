"""A private database for the forecasting tests: their hundreds of synthetic tenants stay out of
the session database, where other tests invoice every tenant."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from forecasting.generator import HistorySpec, simulate
from forecasting.generator_store import Written, generate
from infra.database import create_database, drop_database, migrate
from infra.settings import Settings
from tests.conftest import SESSION

PREFIX = f"fc{uuid.uuid4().hex[:6]}-"
SPEC = HistorySpec(prefix=PREFIX, tenants=400, seed=7)


@pytest.fixture(scope="session")
def private_settings(stack) -> Settings:
    """The stack's settings (Ray is up) on a database of their own, migrated."""
    name = f"billing_test_{SESSION}_forecasting"
    url = asyncio.run(create_database(stack.settings.database_url, name))
    migrate(url)
    yield stack.settings.with_(database_url=url)
    asyncio.run(drop_database(stack.settings.database_url, name))


@pytest.fixture(scope="session")
def history(private_settings: Settings) -> Written:
    return generate(private_settings, SPEC)


@pytest.fixture(scope="session")
def simulated():
    return simulate(SPEC)
