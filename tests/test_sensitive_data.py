"""Card data stays out of scope and sensitive values are sealed: after the payment flows (run
before this module), no table and no log holds a card-number-like string, every sealed column
holds ciphertext only, and a key rotation leaves every value readable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import ray

from infra.field_encryption import is_token, key_version
from infra.sealed_columns import SEALED
from payments.stripe_gateway import StripeGateway
from tests.conftest import auth
from tests.stack_support import sql

# Card numbers as they are written: 13 to 19 digits in a row, or grouped 4-4-4-4 or 4-6-5 (Amex)
# with spaces or dashes. Not any dashed digits: Ray's log lines are full of "462-01000000-18317".
# Not digits glued to letters either: a random hex id ("evt_9f4590989034109c…") holds a
# Luhn-valid run now and then (CI saw one), and no card number is written inside a word.
DIGIT_RUN = re.compile(
    r"(?<![\dA-Za-z-])(?:\d{13,19}|\d{4}(?:[ -]\d{4}){3}|\d{4}[ -]\d{6}[ -]\d{5})(?![\dA-Za-z-])"
)
# The card schemes' issuer prefixes and number lengths (Visa, Mastercard, Amex, Discover, JCB,
# Diners, UnionPay).
SCHEMES = (
    (r"4", (13, 16, 19)),
    (r"5[1-5]|2[2-7]", (16,)),
    (r"3[47]", (15,)),
    (r"6011|65", (16, 19)),
    (r"35", (16, 19)),
    (r"30[0-5]|36|38", (14, 16, 19)),
    (r"62", (16, 17, 18, 19)),
)


def luhn(digits: str) -> bool:
    total = sum(int(d) for d in digits[-1::-2]) + sum(sum(divmod(2 * int(d), 10)) for d in digits[-2::-2])
    return total % 10 == 0


def test_the_scan_finds_card_numbers_as_they_are_written():
    assert (
        card_like("pm 4242424242424242 x")
        and card_like("4000 0566 5566 5556")
        and card_like("3782-822463-10005")
    )
    assert not card_like("worker-462-01000000-18317") and not card_like("4242424242424241")
    assert not card_like("240079953920000")  # 15 digits: no scheme starting 24 has 15
    assert not card_like("evt_9f4590989034109c2a") and card_like("card=4590989034109;")


def card_like(textual: str) -> list[str]:
    found = []
    for match in DIGIT_RUN.finditer(textual):
        digits = re.sub(r"\D", "", match.group())
        scheme = any(re.match(prefix, digits) and len(digits) in lengths for prefix, lengths in SCHEMES)
        if scheme and luhn(digits):
            found.append(match.group())
    return found


def _every_row_as_text(settings) -> dict[str, list[str]]:
    tables = [
        name
        for (name,) in sql(
            settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
    ]
    return {
        table: [row[0] for row in sql(settings, f'SELECT row_to_json(t)::text FROM "{table}" t')]
        for table in tables
    }


def _sealed_values(settings) -> dict[str, list[str]]:
    return {
        sealed.field: [
            value
            for (value,) in sql(
                settings, f"SELECT {sealed.column} FROM {sealed.table.name} WHERE {sealed.column} IS NOT NULL"
            )
        ]
        for sealed in SEALED
    }


def _tenant_with_secrets(api, tokens, stack) -> tuple[str, str, str]:
    tenant_id = f"pci-{uuid.uuid4().hex[:8]}"
    stripe = StripeGateway(stack.settings.stripe_api_key, api_base=stack.settings.stripe_api_base)
    vat_id = "DE136695976"
    customer = stripe.create_customer(
        tenant_id, f"{tenant_id}@example.com", tenant_id, f"customer-{tenant_id}"
    )
    admin = auth(tokens["billing-admin"])
    body = {
        "tenant_id": tenant_id,
        "name": tenant_id,
        "tier": "shared",
        "currency": "usd",  # no exchange rate needed
        "country": "DE",
        "vat_id": vat_id,
    }
    assert api.post("/api/v1/tenants", json=body, headers=admin).status_code == 201
    method = {"provider": "stripe", "payment_method_id": "pm_card_visa", "customer_id": customer}
    assert (
        api.post(f"/api/v1/tenants/{tenant_id}/payment-methods", json=method, headers=admin).status_code
        == 204
    )
    return tenant_id, vat_id, customer


def test_no_table_and_no_log_holds_a_card_number_and_sealed_columns_hold_ciphertext(api, tokens, stack):
    _, vat_id, customer = _tenant_with_secrets(api, tokens, stack)
    dump = _every_row_as_text(stack.settings)
    assert {
        table: hits for table, rows in dump.items() if (hits := [h for row in rows for h in card_like(row)])
    } == {}
    everything = "\n".join(row for rows in dump.values() for row in rows)
    assert vat_id not in everything and customer not in everything and "pm_card_visa" not in everything

    sealed = _sealed_values(stack.settings)
    assert (
        sealed["tenants.vat_id"]
        and sealed["payment_methods.method_ref"]
        and sealed["payment_methods.customer_ref"]
    )
    assert {field: [v for v in values if not is_token(v)] for field, values in sealed.items()} == {
        field: [] for field in sealed
    }

    # The logs of our own code: the Serve replicas and the Ray workers (tasks, actors). Ray's
    # own daemons (raylet, GCS) never see a request.
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    ours = [*logs.glob("serve/*"), *logs.glob("worker-*"), *logs.glob("python-core-worker-*")]
    assert ours, f"no logs of ours under {logs}"
    hits = {
        str(path): found
        for path in ours
        if path.is_file() and (found := card_like(path.read_text(errors="replace")))
    }
    assert hits == {}


def test_a_key_rotation_leaves_every_value_readable(api, tokens, stack, stripe_server):
    tenant_id, vat_id, _ = _tenant_with_secrets(api, tokens, stack)
    before = {key_version(v) for values in _sealed_values(stack.settings).values() for v in values}
    settings = stack.settings
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_DATA_DIR": str(settings.data_dir),
    }
    rotated = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the assertion below shows stderr
    )
    assert rotated.returncode == 0, rotated.stderr
    newest = max(before) + 1
    assert f"key version {newest} is now current" in rotated.stdout
    assert {key_version(v) for values in _sealed_values(settings).values() for v in values} == {newest}

    # The running replicas read the re-encrypted values (they reload the keyring on a new version).
    assert api.get(f"/api/v1/tenants/{tenant_id}", headers=auth(tokens["viewer"])).json()["vat_id"] == vat_id
    admin = auth(tokens["billing-admin"])
    request = {
        "tenant_id": tenant_id,
        "period_start": "2025-05-01T00:00:00Z",
        "period_end": "2025-06-01T00:00:00Z",
    }
    lite = {"tier": "lite", "contracts": [], "licence": None}
    assert api.put(f"/api/v1/tenants/{tenant_id}/pricing", json=lite, headers=admin).status_code == 200
    draft = api.post("/api/v1/invoices", json=request, headers=admin).json()
    invoice = api.post(f"/api/v1/invoices/{draft['invoice_id']}/finalize", headers=admin).json()
    assert invoice["tax_note"].startswith("VAT 19%")  # the buyer's country and VAT id were read
    paid = api.post(
        "/api/v1/payments",
        json={"invoice_id": invoice["invoice_id"], "payment_method": "stripe"},
        headers=admin | {"Idempotency-Key": f"rot-{tenant_id}"},
    )
    assert paid.status_code == 201 and paid.json()["status"] == "completed", paid.text
    charge = next(c for c in stripe_server.charges if c.payment_intent == paid.json()["transaction_id"])
    assert charge.payment_method == "pm_card_visa"
