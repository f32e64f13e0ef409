"""The payment sandbox: local Stripe, PayPal and Vault servers that answer as the real ones do.

No network reaches Stripe, PayPal or a Vault here; `billing demo`, `billing sandbox` and the tests
run these instead. They keep their state in memory and sign webhooks exactly as the providers do
(Stripe's HMAC, PayPal's certificate chain under a local root CA written to disk).

    with Sandbox(root_certificate=data_dir / "sandbox-paypal-root.pem") as sandbox:
        settings = settings.with_(**sandbox.settings())  # or os.environ |= sandbox.environment()
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Self

from payments.sandbox.paypal_server import PayPalServer
from payments.sandbox.stripe_server import StripeServer
from payments.sandbox.vault_server import VaultServer

__all__ = ["PayPalServer", "Sandbox", "StripeServer", "VaultServer"]


class Sandbox:
    """The three servers together; ports 0 mean free ones. The PayPal root certificate, which the
    service needs to verify PayPal's webhook signatures, is written to `root_certificate`."""

    def __init__(
        self, root_certificate: Path, stripe_port: int = 0, paypal_port: int = 0, vault_port: int = 0
    ) -> None:
        self.root_certificate = root_certificate
        self.stripe = StripeServer(port=stripe_port)
        self.paypal = PayPalServer(port=paypal_port)
        self.vault = VaultServer(port=vault_port)
        self._servers = ExitStack()

    def start(self) -> Self:
        from cryptography.hazmat.primitives.serialization import Encoding

        for server in (self.stripe, self.paypal, self.vault):
            self._servers.enter_context(server)
        self.root_certificate.parent.mkdir(parents=True, exist_ok=True)
        self.root_certificate.write_bytes(self.paypal.root_certificate.public_bytes(Encoding.PEM))
        return self

    def stop(self) -> None:
        self._servers.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settings(self) -> dict[str, str]:
        """Overrides for infra.settings.Settings pointing the service at the Stripe and PayPal here."""
        return {
            "stripe_api_key": self.stripe.api_key,
            "stripe_api_base": self.stripe.url,
            "stripe_webhook_secret": self.stripe.webhook_secret,
            "paypal_client_id": self.paypal.client_id,
            "paypal_client_secret": self.paypal.client_secret,
            "paypal_base_url": self.paypal.url,
            "paypal_webhook_id": self.paypal.webhook_id,
            "paypal_cert_url_prefix": self.paypal.url + "/",
            "paypal_root_certificate": str(self.root_certificate),
        }

    def environment(self) -> dict[str, str]:
        """The same as environment variables (`billing up` reads them), plus Vault's."""
        return {name.upper(): value for name, value in self.settings().items()} | {
            "VAULT_ADDR": self.vault.url,
            "VAULT_TOKEN": self.vault.token,
        }
