"""The payment providers: one registration line each, and their gateways and webhook verifiers
built once from Settings.

Everything a provider does differently (its API, its currency exponents, how it signs and reads
its webhook events, whether a charge needs a saved method) lives in its adapter, which declares
it in a `PaymentProvider`. Adding a provider is writing its adapter and adding it to REGISTRY.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.settings import Settings
from payments.errors import ProviderUnavailable
from payments.gateway import PaymentGateway, PaymentProvider, SavedMethod, WebhookVerifier
from payments.paypal_gateway import PAYPAL
from payments.stripe_gateway import STRIPE
from payments.wire import WIRE

REGISTRY: Mapping[str, PaymentProvider] = {
    provider.name: provider
    for provider in (
        STRIPE,
        PAYPAL,
        WIRE,
    )
}


def names() -> tuple[str, ...]:
    """The API's `payment_method` values."""
    return tuple(REGISTRY)


def attachable() -> tuple[str, ...]:
    """The providers at which a tenant can attach a saved payment method."""
    return tuple(name for name, p in REGISTRY.items() if p.saved_method is not SavedMethod.NONE)


def with_webhooks() -> tuple[PaymentProvider, ...]:
    return tuple(p for p in REGISTRY.values() if p.webhooks is not None)


@dataclass
class Providers:
    """The configured providers of one process; each gateway and verifier is built on first use
    (a provider left unconfigured answers `ProviderUnavailable` then, and only for its calls)."""

    settings: Settings
    registry: Mapping[str, PaymentProvider] = field(default_factory=lambda: REGISTRY)
    _gateways: dict[str, PaymentGateway] = field(default_factory=dict, repr=False)
    _verifiers: dict[str, WebhookVerifier] = field(default_factory=dict, repr=False)

    def provider(self, name: str) -> PaymentProvider:
        try:
            return self.registry[name]
        except KeyError:
            raise ProviderUnavailable(f"no payment provider {name!r}") from None

    def gateway(self, name: str) -> PaymentGateway:
        """The adapter of a payment method (`payment_method` in the API)."""
        if name not in self._gateways:
            self._gateways[name] = self.provider(name).gateway(self.settings)
        return self._gateways[name]

    def webhooks(self, name: str) -> WebhookVerifier:
        """The webhook verifier of a provider; it caches what it fetched (certificates)."""
        if name not in self._verifiers:
            build = self.provider(name).webhooks
            if build is None:
                raise ProviderUnavailable(f"{name} sends no webhooks")
            self._verifiers[name] = build(self.settings)
        return self._verifiers[name]
