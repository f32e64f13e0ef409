"""Local Stripe, PayPal and Vault servers for the payments tests (tests/providers)."""

from tests.providers.fixtures import paypal_server, stripe_server, vault_server

__all__ = ["paypal_server", "stripe_server", "vault_server"]
