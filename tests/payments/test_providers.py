"""The provider registry: each provider's specifics live in its adapter, the rest of payments is
provider-neutral, and adding a provider is its adapter plus one line in `REGISTRY` (issue 16)."""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from payments import providers
from payments.errors import ProviderUnavailable
from payments.gateway import (
    ChargeRequest,
    ChargeResult,
    PaymentProvider,
    PaymentStatus,
    RefundRequest,
    RefundResult,
    SavedMethod,
    WebhookEvent,
)
from payments.lifecycle import PaymentState
from payments.paypal_gateway import PAYPAL
from payments.providers import REGISTRY, Providers
from payments.stripe_gateway import STRIPE

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_NAMES = ("stripe", "paypal", "wire")
# Everything in payments/ but the adapters, their verifiers, the registry, the bank-transfer
# method's own modules (statements, matching, reconciliation), and the package's map.
PROVIDER_SPECIFIC = {
    "__init__.py",
    "stripe_gateway.py",
    "paypal_gateway.py",
    "wire.py",
    "webhooks.py",
    "providers.py",
    "bank_statements.py",
    "matching.py",
    "reconciliation.py",
}


def _event(provider: str, type_: str, object_type: str, object_id: str, **extra: Any) -> WebhookEvent:
    related = extra.pop("related", {})
    return WebhookEvent(provider, "evt_1", type_, datetime.now(UTC), object_type, object_id, related, extra)


def test_the_api_methods_are_the_registered_providers() -> None:
    assert providers.names() == PROVIDER_NAMES
    assert providers.attachable() == ("stripe", "paypal")
    assert [p.name for p in providers.with_webhooks()] == ["stripe", "paypal"]
    assert {name: p.saved_method for name, p in REGISTRY.items()} == {
        "stripe": SavedMethod.REQUIRED,
        "paypal": SavedMethod.OPTIONAL,
        "wire": SavedMethod.NONE,
    }


def test_stripe_reads_its_own_events_in_its_own_units() -> None:
    assert STRIPE.read_event is not None
    succeeded = STRIPE.read_event(_event("stripe", "payment_intent.succeeded", "payment_intent", "pi_1"))
    assert (succeeded.transaction_id, succeeded.report and succeeded.report.status) == (
        "pi_1",
        PaymentState.COMPLETED,
    )
    failure = {"object": {"last_payment_error": {"decline_code": "insufficient_funds"}}}
    failed = STRIPE.read_event(
        _event("stripe", "payment_intent.payment_failed", "payment_intent", "pi_1", data=failure)
    )
    assert failed.report is not None and failed.report.failure_code == "insufficient_funds"
    # Stripe counts ISK in hundredths although ISO 4217 gives it no minor unit.
    refund = {"object": {"currency": "isk", "amount_refunded": 150000}}
    refunded = STRIPE.read_event(
        _event("stripe", "charge.refunded", "charge", "ch_1", data=refund, related={"payment_intent": "pi_1"})
    )
    assert refunded.transaction_id == "pi_1" and refunded.report is not None
    assert refunded.report.refunded == Decimal(1500) and refunded.report.status is None


def test_paypal_reads_an_approval_as_a_capture_to_make() -> None:
    assert PAYPAL.read_event is not None
    approved = PAYPAL.read_event(_event("paypal", "CHECKOUT.ORDER.APPROVED", "checkout-order", "ORDER1"))
    assert (approved.transaction_id, approved.approved, approved.report) == ("ORDER1", True, None)
    captured = PAYPAL.read_event(
        _event("paypal", "PAYMENT.CAPTURE.COMPLETED", "capture", "CAP1", related={"order_id": "ORDER1"})
    )
    assert captured.transaction_id == "ORDER1" and not captured.approved
    assert captured.report is not None and captured.report.status == PaymentState.COMPLETED


class _Voucher:
    """A made-up fourth method, to show what adding one takes."""

    name = "voucher"

    def charge(self, request: ChargeRequest) -> ChargeResult:
        return ChargeResult(self.name, "V-1", PaymentStatus.COMPLETED, request.amount, request.currency)

    def status(self, transaction_id: str) -> ChargeResult:
        raise NotImplementedError

    def refund(self, request: RefundRequest) -> RefundResult:
        raise NotImplementedError


def test_a_new_provider_is_its_adapter_and_one_registration() -> None:
    voucher = PaymentProvider("voucher", "Voucher", SavedMethod.NONE, gateway=lambda _settings: _Voucher())
    configured = Providers(Settings(), registry={**REGISTRY, voucher.name: voucher})
    assert configured.gateway("voucher").name == "voucher"
    with pytest.raises(ProviderUnavailable, match="sends no webhooks"):
        configured.webhooks("voucher")
    with pytest.raises(ProviderUnavailable, match="no payment provider"):
        configured.gateway("cash")


def test_an_unconfigured_provider_answers_unavailable_only_for_itself() -> None:
    settings = replace(Settings(), stripe_api_key=None, stripe_webhook_secret=None)
    configured = Providers(settings)
    with pytest.raises(ProviderUnavailable, match="STRIPE_API_KEY"):
        configured.gateway("stripe")
    with pytest.raises(ProviderUnavailable, match="STRIPE_WEBHOOK_SECRET"):
        configured.webhooks("stripe")
    assert configured.gateway("wire").name == "wire"


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "module",
    sorted(p.name for p in (ROOT / "payments").glob("*.py") if p.name not in PROVIDER_SPECIFIC),
)
def test_provider_neutral_modules_name_no_provider(module: str) -> None:
    text = _source(ROOT / "payments" / module).lower()
    assert [name for name in PROVIDER_NAMES if name in text] == []


def _imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


@pytest.mark.parametrize("route", ["payments.py", "webhooks.py"])
def test_payment_routes_call_use_cases_not_stores(route: str) -> None:
    imports = _imports(ast.parse(_source(ROOT / "serve" / "routes" / route)))
    assert [name for name in imports if name.split(".")[0] in ("infra", "sqlalchemy")] == []
    assert "payments.service" not in imports


def test_webhook_routes_follow_the_registry() -> None:
    from serve.routes import webhooks

    paths = sorted(getattr(route, "path", "") for route in webhooks.router.routes)
    assert paths == [
        f"/api/v1/webhooks/{p.name}" for p in sorted(providers.with_webhooks(), key=lambda p: p.name)
    ]
