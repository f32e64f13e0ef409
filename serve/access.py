"""Who may call what: the one table of route x role for the whole API.

Every route's handler takes its caller from `authorized`, which looks the route up here; the app
refuses to start when a route is missing from the table (or the table names a route that does
not exist), so a new route cannot ship without a decision. Routes a tenant may call also check,
in the handler, that the tenant reads only its own data (`check_reads_tenant`); the RBAC test
walks every route of the OpenAPI spec with every role and with another tenant's token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request
from fastapi.routing import APIRoute

from infra import audit_store
from infra.settings import ConfigurationError
from serve.auth import Principal
from serve.problems import Problem
from serve.rate_limits import admit
from serve.services import services

ADMIN = frozenset({"billing-admin"})
BILLERS = ADMIN | {"finance"}
STAFF = BILLERS | {"viewer"}
TENANT = frozenset({"tenant"})


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    scope: str | None = None  # a JWT scope asked for instead of a role (the kernel's)


# Reached without a token: probes, and webhooks, which prove themselves by their signature.
PUBLIC = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("POST", "/api/v1/webhooks/stripe"),
        ("POST", "/api/v1/webhooks/paypal"),
    }
)

V1 = "/api/v1"
ACCESS: dict[tuple[str, str], Rule] = {
    # metering
    ("POST", f"{V1}/usage"): Rule(frozenset(), scope="usage:write"),
    ("GET", f"{V1}/usage/{{tenant_id}}"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/usage"): Rule(STAFF),
    # tenants and their pricing
    ("POST", f"{V1}/tenants"): Rule(ADMIN),
    ("GET", f"{V1}/tenants/{{tenant_id}}"): Rule(STAFF | TENANT),
    ("PATCH", f"{V1}/tenants/{{tenant_id}}"): Rule(ADMIN),
    ("GET", f"{V1}/catalog"): Rule(STAFF),
    ("POST", f"{V1}/catalog/versions"): Rule(ADMIN),
    ("GET", f"{V1}/tenants/{{tenant_id}}/pricing"): Rule(STAFF | TENANT),
    ("PUT", f"{V1}/tenants/{{tenant_id}}/pricing"): Rule(ADMIN),
    ("POST", f"{V1}/tenants/{{tenant_id}}/credits"): Rule(BILLERS),
    ("GET", f"{V1}/tenants/{{tenant_id}}/credits"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/tenants/{{tenant_id}}/quote"): Rule(STAFF | TENANT),
    # invoices
    ("POST", f"{V1}/invoices"): Rule(BILLERS),
    ("GET", f"{V1}/invoices"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/invoices/{{invoice_id}}"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/invoices/{{invoice_id}}/pdf"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/invoices/{{invoice_id}}/einvoice"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/credit-notes/{{credit_note_id}}/pdf"): Rule(STAFF | TENANT),
    ("GET", f"{V1}/credit-notes/{{credit_note_id}}/einvoice"): Rule(STAFF | TENANT),
    ("POST", f"{V1}/invoices/{{invoice_id}}/finalize"): Rule(BILLERS),
    ("POST", f"{V1}/invoices/{{invoice_id}}/credit-notes"): Rule(BILLERS),
    ("GET", f"{V1}/invoices/{{invoice_id}}/credit-notes"): Rule(STAFF | TENANT),
    ("POST", f"{V1}/invoices/{{invoice_id}}/{{action}}"): Rule(BILLERS),
    ("POST", f"{V1}/invoice-runs"): Rule(BILLERS),
    ("GET", f"{V1}/invoice-runs"): Rule(STAFF),
    ("GET", f"{V1}/invoice-runs/{{run_id}}"): Rule(STAFF),
    # payments
    ("POST", f"{V1}/payments"): Rule(BILLERS | TENANT),
    ("GET", f"{V1}/payments/{{payment_id}}"): Rule(STAFF | TENANT),
    ("POST", f"{V1}/payments/{{payment_id}}/refunds"): Rule(BILLERS),
    ("POST", f"{V1}/tenants/{{tenant_id}}/payment-methods"): Rule(ADMIN | TENANT),
    ("POST", f"{V1}/bank-statements"): Rule(BILLERS),
    # reports
    ("GET", f"{V1}/reports/revenue"): Rule(STAFF),
    ("GET", f"{V1}/reports/churn"): Rule(STAFF),
    ("GET", f"{V1}/tenants/{{tenant_id}}/forecast"): Rule(STAFF | TENANT),
    # the audit log (issue 7): who changed money is for those who may change it
    ("GET", f"{V1}/audit"): Rule(BILLERS),
    # outbound webhooks and alerts (issue 17): a tenant manages its own, billing-admin any
    ("POST", f"{V1}/webhook-endpoints"): Rule(ADMIN | TENANT),
    ("GET", f"{V1}/webhook-endpoints"): Rule(ADMIN | TENANT),
    ("GET", f"{V1}/webhook-endpoints/{{endpoint_id}}"): Rule(ADMIN | TENANT),
    ("DELETE", f"{V1}/webhook-endpoints/{{endpoint_id}}"): Rule(ADMIN | TENANT),
    ("POST", f"{V1}/webhook-endpoints/{{endpoint_id}}/rotate-secret"): Rule(ADMIN | TENANT),
    ("GET", f"{V1}/webhook-deliveries"): Rule(ADMIN | TENANT),
    ("POST", f"{V1}/webhook-deliveries/{{delivery_id}}/replay"): Rule(ADMIN | TENANT),
    ("POST", f"{V1}/tenants/{{tenant_id}}/alerts"): Rule(ADMIN | TENANT),
    ("GET", f"{V1}/tenants/{{tenant_id}}/alerts"): Rule(STAFF | TENANT),
    ("DELETE", f"{V1}/tenants/{{tenant_id}}/alerts/{{alert_id}}"): Rule(ADMIN | TENANT),
}


# The browser pages (issue 19), signed in by a session cookie (serve/sessions.py) that stands for a
# bearer token: checked like the API, kept apart because they are not API operations (not in the
# OpenAPI spec). The sign-in link and sign-out need no role: the link is itself a signed token,
# sign-out needs the session's CSRF token.
PAGES: dict[tuple[str, str], Rule] = {
    ("GET", "/portal/login"): Rule(frozenset()),
    ("POST", "/portal/logout"): Rule(frozenset()),
    ("GET", "/portal"): Rule(TENANT),
    ("POST", "/portal/invoices/{invoice_id}/pay"): Rule(TENANT),
    # PayPal sends the payer back here, from its own site: no session cookie comes along
    # (SameSite=Strict). The return captures only what the payer approved at PayPal.
    ("GET", "/paypal/return"): Rule(frozenset()),
    ("GET", "/paypal/cancel"): Rule(frozenset()),
    ("GET", "/console"): Rule(STAFF),
    ("POST", "/console/invoice-runs"): Rule(BILLERS),
}


async def authorized(request: Request) -> Principal:
    """The caller of this route, when the table lets its role (or scope) call it; else 401/403.
    As a dependency it runs before the body is validated: a stranger learns nothing from a 422."""
    rule = ACCESS[(request.method, request.scope["route"].path_format)]  # without {x:convertor}
    principal = services(request).auth.require(request, tuple(rule.roles), rule.scope)
    # Audit entries written for this request carry its id (HAProxy sets X-Request-ID when absent).
    audit_store.REQUEST_ID.set(request.headers.get("x-request-id"))
    await admit(request, principal.subject)  # 429 past the caller's per-second limit
    # A tenant named in the path or query is checked here, before the body is even read; routes
    # that reach a tenant through an object (an invoice, a payment) check it in the handler.
    named = request.path_params.get("tenant_id") or request.query_params.get("tenant_id")
    if named is not None and not principal.may_read_tenant(named):
        raise Problem(403, "forbidden", "Forbidden", "a tenant token reads only its own tenant")
    return principal


def check_complete(routes: Iterable[APIRoute]) -> None:
    """Refuse to start unless the table and the routes name the same (method, path) pairs."""
    served = {(method, route.path_format) for route in routes for method in route.methods or ()}
    missing, stale = served - set(ACCESS) - PUBLIC, set(ACCESS) - served
    if missing or stale:
        raise ConfigurationError(
            f"serve/access.py: routes without a rule {sorted(missing)}, rules without a route {sorted(stale)}"
        )
