"""What the pricing routes share: exact JSON bodies, domain errors as problems."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from actors.live_usage import UsageNotSettled
from invoicing.errors import TenantNotFound
from pricing.errors import InvalidField, InvalidSettings, NoPriceInForce
from pricing.fx import NoRateInForce
from pricing.json_fields import decimal_json
from serve.auth import Principal
from serve.problems import Problem, unprocessable


def rating_problem(error: Exception) -> Problem:
    """What a client is told when a tenant's period cannot be rated or invoiced."""
    if isinstance(error, TenantNotFound):
        return no_such_tenant(str(error))
    if isinstance(error, UsageNotSettled):
        return Problem(503, "unavailable", "Usage is settling", "retry shortly", headers={"Retry-After": "1"})
    if isinstance(error, InvalidSettings):  # airgapped without a licence: nothing to price yet
        return Problem(409, "conflict", "Tenant cannot be priced yet", f"{error.field}: {error.message}")
    if isinstance(error, NoRateInForce):
        return Problem(409, "conflict", "No exchange rate", f"fx: {error}; load rates with `billing fx load`")
    if isinstance(error, NoPriceInForce):
        return invalid_field("period_start", str(error))
    if isinstance(error, InvalidField):
        return invalid(error)
    raise error


RATING_ERRORS = (
    TenantNotFound,
    UsageNotSettled,
    InvalidSettings,
    NoRateInForce,
    NoPriceInForce,
    InvalidField,
)


async def json_body(request: Request) -> Any:
    """The body as JSON with decimals kept exact: `0.1` arrives as Decimal("0.1"), not a float."""
    try:
        return decimal_json(await request.body())
    except (ValueError, UnicodeDecodeError) as error:
        raise unprocessable([{"field": "body", "message": f"must be a JSON document ({error})"}]) from None


def json_object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise unprocessable([{"field": "body", "message": "must be a JSON object"}])
    return document


def invalid(error: InvalidField) -> Problem:
    """A domain error about the request as a 422 naming its field (a JSON path into the body)."""
    return unprocessable([{"field": error.field or "body", "message": error.message}])


def invalid_field(field: str, message: str) -> Problem:
    return unprocessable([{"field": field, "message": message}])


def check_reads_tenant(principal: Principal, tenant_id: str) -> None:
    if not principal.may_read_tenant(tenant_id):
        raise Problem(403, "forbidden", "Forbidden", "a tenant token reads only its own tenant")


def no_such_tenant(tenant_id: str) -> Problem:
    return Problem(404, "not-found", "No such tenant", f"tenant_id: {tenant_id!r} is not registered")


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def json_request_body(description: str, example: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI for a route that reads its JSON body itself (to keep decimals exact)."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }
