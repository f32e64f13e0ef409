"""Outbound webhooks (issue 17): endpoints (create, list, get, delete, rotate the secret) and their
deliveries (list with attempts, replay). Each handler parses, calls one use case of
`notifications/`, and renders the record it returns. A tenant token manages its own endpoints;
billing-admin any, and may make platform endpoints (no tenant_id) that get every tenant's events."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from notifications import deliveries, endpoints
from notifications.context import NotificationContext
from notifications.errors import Forbidden, InvalidField, NotFound
from notifications.records import Caller
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import invalid, json_body, json_object, json_request_body, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["webhooks (outbound)"])

EXAMPLE = {"url": "https://hooks.example.com/billing", "event_types": ["invoice.finalized", "invoice.paid"]}


def _context(request: Request) -> NotificationContext:
    return services(request).notifications


def _caller(principal: Principal) -> Caller:
    return Caller(None if "billing-admin" in principal.roles else principal.tenant_id)


@contextmanager
def _problems() -> Iterator[None]:
    try:
        yield
    except InvalidField as error:
        raise invalid(error) from None
    except NotFound as error:
        raise Problem(404, "not-found", f"No such {error.what}", f"{error}") from None
    except Forbidden as error:
        raise Problem(403, "forbidden", "Forbidden", str(error)) from None
    except deliveries.EndpointDisabled as error:
        raise Problem(409, "conflict", "Endpoint disabled", f"endpoint_id: {error}") from None


@router.post(
    "/webhook-endpoints",
    status_code=201,
    summary="Register a webhook endpoint; the answer holds its signing secret (shown once)",
    openapi_extra=json_request_body('{"url", "event_types": [...] or ["*"], "tenant_id"?}', EXAMPLE),
)
async def create_endpoint(request: Request, principal: Annotated[Principal, Depends(authorized)]) -> Response:
    document = json_object(await json_body(request))
    with _problems():
        made = await endpoints.create_endpoint(_context(request), _caller(principal), document)
    return json_response(made.to_json(), status=201)


@router.get("/webhook-endpoints", summary="Webhook endpoints: the caller's, or one tenant's")
async def list_endpoints(
    request: Request,
    principal: Annotated[Principal, Depends(authorized)],
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    with _problems():
        found = await endpoints.list_endpoints(_context(request), _caller(principal), tenant_id)
    return json_response({"endpoints": [endpoint.to_json() for endpoint in found]})


@router.get("/webhook-endpoints/{endpoint_id}", summary="A webhook endpoint")
async def get_endpoint(
    request: Request, endpoint_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    with _problems():
        endpoint = await endpoints.get_endpoint(_context(request), _caller(principal), endpoint_id)
    return json_response(endpoint.to_json())


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint")
async def delete_endpoint(
    request: Request, endpoint_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    with _problems():
        await endpoints.delete_endpoint(_context(request), _caller(principal), endpoint_id)
    return Response(status_code=204)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret",
    summary="A new signing secret; the old one keeps signing beside it for a grace period",
)
async def rotate_secret(
    request: Request, endpoint_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    with _problems():
        rotated = await endpoints.rotate_secret(_context(request), _caller(principal), endpoint_id)
    return json_response(rotated.to_json())


@router.get("/webhook-deliveries", summary="Deliveries with their attempts, newest first")
async def list_deliveries(
    request: Request,
    principal: Annotated[Principal, Depends(authorized)],
    endpoint_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    with _problems():
        found = await deliveries.list_deliveries(_context(request), _caller(principal), endpoint_id, limit)
    return json_response({"deliveries": [delivery.to_json() for delivery in found]})


@router.post(
    "/webhook-deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a delivery again now, with the same webhook-id",
)
async def replay_delivery(
    request: Request, delivery_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    with _problems():
        delivery = await deliveries.replay_delivery(_context(request), _caller(principal), delivery_id)
    return json_response(delivery.to_json(), status=202)
