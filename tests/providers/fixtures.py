"""pytest fixtures for the local providers (payments/sandbox), one server of each per session.

Use from a conftest.py: `from tests.providers.fixtures import stripe_server, paypal_server  # noqa`.
The servers keep state for the whole session, so a test asserts on the charges of ITS OWN
transaction ids (or on the difference in counts), never on totals.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payments.sandbox import PayPalServer, StripeServer, VaultServer


@pytest.fixture(scope="session")
def stripe_server() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server


@pytest.fixture(scope="session")
def paypal_server() -> Iterator[PayPalServer]:
    with PayPalServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    with VaultServer() as server:
        yield server
