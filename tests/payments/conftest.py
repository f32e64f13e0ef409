"""The payments tests use the local Stripe, PayPal and Vault servers of tests/conftest.py."""
