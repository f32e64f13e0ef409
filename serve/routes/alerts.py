"""A tenant's alerts (issue 17): usage, spend, spend forecast and credits thresholds. Each
handler parses, calls one use case of `notifications/alerts.py`, and renders its record; the
alerts fire through the outbound webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from notifications import alerts
from notifications.errors import InvalidField, NotFound
from serve.access import authorized
from serve.auth import Principal
from serve.problems import Problem
from serve.routes.pricing_support import invalid, json_body, json_object, json_request_body, json_response
from serve.services import services

router = APIRouter(prefix="/api/v1", tags=["alerts"])

EXAMPLE = {"kind": "spend", "threshold": "500.00", "currency": "usd"}


@contextmanager
def _problems() -> Iterator[None]:
    try:
        yield
    except InvalidField as error:
        raise invalid(error) from None
    except NotFound as error:
        raise Problem(404, "not-found", f"No such {error.what}", str(error)) from None


@router.post(
    "/tenants/{tenant_id}/alerts",
    status_code=201,
    summary="Alert when usage, spend, the spend forecast or credits cross a threshold",
    openapi_extra=json_request_body(
        '{"kind": "usage"|"spend"|"spend_forecast"|"credits_balance"|"credits_expiring", "meter"?, '
        '"threshold": "decimal string", "currency"?}',
        EXAMPLE,
    ),
)
async def create_alert(
    request: Request, tenant_id: str, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    document = json_object(await json_body(request))
    with _problems():
        alert = await alerts.create_alert(services(request).notifications, tenant_id, document)
    return json_response(alert.to_json(), status=201)


@router.get("/tenants/{tenant_id}/alerts", summary="A tenant's alerts")
async def list_alerts(request: Request, tenant_id: str, principal: Annotated[Principal, Depends(authorized)]) -> Response:
    with _problems():
        found = await alerts.list_alerts(services(request).notifications, tenant_id)
    return json_response({"alerts": [alert.to_json() for alert in found]})


@router.delete("/tenants/{tenant_id}/alerts/{alert_id}", status_code=204, summary="Delete an alert")
async def delete_alert(
    request: Request, tenant_id: str, alert_id: uuid.UUID, principal: Annotated[Principal, Depends(authorized)]
) -> Response:
    with _problems():
        await alerts.delete_alert(services(request).notifications, tenant_id, alert_id)
    return Response(status_code=204)
