"""The demo's payments: each invoice paid through one of the three methods against local
provider endpoints, and the outcomes printed.

No network reaches Stripe or PayPal here, so without real keys the demo starts the payment sandbox
(payments/sandbox, also `billing sandbox`) and points the service at it; its webhooks are signed
exactly as the providers sign them. With STRIPE_API_KEY / PAYPAL_CLIENT_ID set they are
left alone and the real providers are used.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from payments.sandbox import Sandbox

if TYPE_CHECKING:
    import httpx

    from payments.sandbox.paypal_server import PayPalServer

# tenant -> how it pays (and, for Stripe, the test card its saved method stands for)
PLAN = {
    "acme-zero": ("stripe", "pm_card_visa"),
    "globex-shared": ("paypal", None),
    "initech-lite": ("wire", None),
    "umbrella-ent": ("stripe", "pm_card_chargeDeclined"),
    "stark-airgap": ("wire", None),
    "wayne-shared": ("paypal", None),
    "lumiere-shared": ("wire", None),
}

# A payment by bank transfer awaiting its statement: tenant, invoice id, the reference it is to
# quote, amount (a decimal string) and currency, as the API showed them.
Wire = tuple[str, str, str, str, str]


@contextmanager
def local_providers() -> Iterator[tuple[dict[str, str], Sandbox | None]]:
    """Settings overrides pointing the service at the payment sandbox, and the sandbox (or None)."""
    if os.environ.get("STRIPE_API_KEY"):
        yield {}, None
        return
    root = Path(os.environ.get("BILLING_DATA_DIR") or ".billing").resolve() / "sandbox-paypal-root.pem"
    with Sandbox(root) as sandbox:
        yield sandbox.settings(), sandbox


def save_cards(client: httpx.Client, admin: str, sandbox: Sandbox | None) -> None:
    """The card tenants' cards saved at Stripe, as at sign-up: before the invoice run, so that
    their invoices say the card is charged rather than asking for a transfer."""
    if sandbox is None:
        return
    for tenant_id, (_, card) in PLAN.items():
        if card:
            client.post(
                f"/api/v1/tenants/{tenant_id}/payment-methods",
                json={"provider": "stripe", "payment_method_id": card},
                headers={"authorization": f"Bearer {admin}"},
            ).raise_for_status()


def pay_invoices(
    client: httpx.Client, api_url: str, admin: str, sandbox: Sandbox | None, invoices_dir: Path
) -> None:
    """Pay each demo tenant's latest invoice by its planned method, print what happened, and
    write the paid copies (as a tenant downloads them) beside the originals in `invoices_dir`."""
    if sandbox is None:
        print("\nPayments: skipped (real provider keys are set; the demo pays only against local endpoints)")
        return
    paypal = sandbox.paypal
    auth = {"authorization": f"Bearer {admin}"}
    print(f"\n{'tenant':<16}{'method':<8}{'amount':>14}  {'payment':<10}{'invoice':<14}note")
    wires: list[Wire] = []
    invoice_ids: list[str] = []
    for tenant_id, (method, _) in PLAN.items():
        invoice = client.get("/api/v1/invoices", params={"tenant_id": tenant_id, "limit": 1}, headers=auth)
        invoice = invoice.json()["invoices"][0]
        if invoice["total"].strip("0.") == "":
            print(
                f"{tenant_id:<16}{method:<8}{invoice['total']:>10} {invoice['currency'].upper()}  nothing due"
            )
            continue
        if invoice["status"] == "paid":  # this period was invoiced and paid by an earlier run
            print(
                f"{tenant_id:<16}{method:<8}{invoice['total']:>10} {invoice['currency'].upper()}  "
                f"{'':<10}{'paid':<14}already paid (an earlier run, same period)"
            )
            continue
        body = {"invoice_id": invoice["invoice_id"], "payment_method": method}
        payment = client.post(
            "/api/v1/payments", json=body, headers=auth | {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
        )
        if payment.is_error:
            print(f"{tenant_id:<16}{method:<8}{'':>14}  refused: {payment.json().get('detail')}")
            continue
        payment = payment.json()
        invoice_ids.append(invoice["invoice_id"])
        note = _follow_up(client, api_url, auth, payment, paypal, wires, invoice)
        payment = client.get(f"/api/v1/payments/{payment['payment_id']}", headers=auth).json()
        status = client.get(f"/api/v1/invoices/{invoice['invoice_id']}", headers=auth).json()["status"]
        amount = f"{payment['amount']} {payment['currency'].upper()}"
        print(f"{tenant_id:<16}{method:<8}{amount:>14}  {payment['status']:<10}{status:<14}{note}")
    if wires:
        statement = _statement(wires)
        result = client.post(
            "/api/v1/bank-statements", content=statement, headers=auth | {"Content-Type": "text/csv"}
        ).json()
        kinds = ", ".join(f"{e['entry_id']} {e['match']}" for e in result["entries"])
        print(f"  bank statement (CSV) imported: {kinds}")
        for tenant_id, invoice_id, *_ in wires:
            status = client.get(f"/api/v1/invoices/{invoice_id}", headers=auth).json()["status"]
            print(f"  {tenant_id}: invoice now {status}")
    _write_paid_copies(client, auth, invoice_ids, invoices_dir)


def _write_paid_copies(
    client: httpx.Client, auth: dict[str, str], invoice_ids: list[str], directory: Path
) -> None:
    """The PDF of each paid invoice as GET /invoices/{id}/pdf gives it: a copy stamped PAID
    with the payment; the finalized original beside it stays as it was issued."""
    names = []
    for invoice_id in invoice_ids:
        response = client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=auth)
        response.raise_for_status()
        name = response.headers["content-disposition"].split('filename="')[1].rstrip('"')
        if name.endswith("_paid.pdf"):
            (directory / name).write_bytes(response.content)
            names.append(name)
    if names:
        print(f"  paid copies, as the tenants download them now: {', '.join(names)} in {directory}")


def _follow_up(
    client: httpx.Client,
    api_url: str,
    auth: dict[str, str],
    payment: dict[str, Any],
    paypal: PayPalServer,
    wires: list[Wire],
    invoice: dict[str, Any],
) -> str:
    if payment["payment_method"] == "paypal":
        paypal.approve(payment["transaction_id"])  # the payer approves at PayPal
        event = next(
            e
            for e in reversed(paypal.events)
            if e["event_type"] == "CHECKOUT.ORDER.APPROVED"
            and e["resource"]["id"] == payment["transaction_id"]
        )
        paypal.deliver(event, f"{api_url}/api/v1/webhooks/paypal")
        return "approved by the payer, captured on PayPal's signed webhook"
    if payment["payment_method"] == "wire":
        wires.append(
            (
                invoice["tenant_id"],
                invoice["invoice_id"],
                payment["transaction_id"],
                payment["amount"],
                invoice["currency"],
            )
        )
        return f"reference {payment['transaction_id']}"
    if payment["status"] == "failed":
        return f"declined ({payment['failure_code']}); dunning retries at {payment['next_retry_at'][:16]}"
    return "card saved at Stripe, charged off-session"


def _statement(wires: list[Wire]) -> str:
    """A CSV bank statement in which each wire payer pays its invoice (one of them 5 too much)."""
    rows = ["Entry ID,Booking Date,Value Date,Amount,Currency,Counterparty,Remittance Information"]
    for n, (tenant_id, _, reference, amount, currency) in enumerate(wires):
        paid = Decimal(amount) + (5 if n == 0 else 0)
        today = date.today()
        rows.append(
            f"DEMO-{uuid.uuid4().hex[:8]},{today},{today},{paid},{currency.upper()},{tenant_id},{reference}"
        )
    return "\n".join(rows) + "\n"
