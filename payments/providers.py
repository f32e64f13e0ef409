"""The configured payment methods: gateways and webhook verifiers built from Settings, and the
field cipher whose keys come from Vault or the data dir's key file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography import x509

from infra.settings import Settings
from payments.errors import ProviderUnavailable
from payments.gateway import PaymentGateway
from payments.paypal_gateway import SANDBOX_URL, PayPalGateway
from payments.stripe_gateway import StripeGateway
from payments.webhooks import PAYPAL_CERT_URL_PREFIXES, PayPalWebhookVerifier, StripeWebhookVerifier
from payments.wire import BankAccount, WireGateway


@dataclass
class Providers:
    settings: Settings

    @cached_property
    def stripe(self) -> StripeGateway:
        if not self.settings.stripe_api_key:
            raise ProviderUnavailable("Stripe is not configured (STRIPE_API_KEY)")
        return StripeGateway(self.settings.stripe_api_key, api_base=self.settings.stripe_api_base)

    @cached_property
    def paypal(self) -> PayPalGateway:
        s = self.settings
        if not (s.paypal_client_id and s.paypal_client_secret):
            raise ProviderUnavailable("PayPal is not configured (PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET)")
        return PayPalGateway(
            s.paypal_client_id,
            s.paypal_client_secret,
            return_url=f"{s.public_url}/paypal/return",
            cancel_url=f"{s.public_url}/paypal/cancel",
            base_url=s.paypal_base_url or SANDBOX_URL,
            brand_name=s.issuer,
        )

    @cached_property
    def wire(self) -> WireGateway:
        s = self.settings
        return WireGateway(BankAccount(s.wire_holder, s.wire_iban, s.wire_bic, s.wire_bank))

    def gateway(self, method: str) -> PaymentGateway:
        """The adapter of a payment method ("stripe", "paypal", "wire")."""
        return {"stripe": lambda: self.stripe, "paypal": lambda: self.paypal, "wire": lambda: self.wire}[
            method
        ]()

    @cached_property
    def stripe_webhooks(self) -> StripeWebhookVerifier:
        if not self.settings.stripe_webhook_secret:
            raise ProviderUnavailable("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
        return StripeWebhookVerifier(self.settings.stripe_webhook_secret)

    @cached_property
    def paypal_webhooks(self) -> PayPalWebhookVerifier:
        s = self.settings
        if not s.paypal_webhook_id:
            raise ProviderUnavailable("PayPal webhooks are not configured (PAYPAL_WEBHOOK_ID)")
        prefixes = PAYPAL_CERT_URL_PREFIXES + (
            (s.paypal_cert_url_prefix,) if s.paypal_cert_url_prefix else ()
        )
        roots = (
            x509.load_pem_x509_certificates(Path(s.paypal_root_certificate).read_bytes())
            if s.paypal_root_certificate
            else ()
        )
        return PayPalWebhookVerifier(s.paypal_webhook_id, trusted_roots=roots, cert_url_prefixes=prefixes)
