"""The audit log: who changed money, when, and what it was before and after (issue 7). Read-only
here; entries are written by the actions themselves, in their own transactions
(infra/audit_store.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime
from starlette.responses import Response

from infra import audit_store
from serve.access import authorized
from serve.auth import Principal
from serve.routes.pricing_support import json_response
from serve.services import services
from serve.usage_events import TENANT_ID

router = APIRouter(prefix="/api/v1", tags=["audit"])
ACTION = r"^[a-z_]+\.[a-z_]+$"  # "<subject>.<what happened>", e.g. invoice.finalized


@router.get("/audit", summary="Audit log entries, the newest first")
async def read_audit_log(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    tenant_id: Annotated[str | None, Query(pattern=TENANT_ID)] = None,
    action: Annotated[str | None, Query(pattern=ACTION, max_length=64)] = None,
    since: Annotated[AwareDatetime | None, Query(description="entries at or after this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    async with services(request).engine.connect() as conn:
        rows = await audit_store.entries(conn, tenant_id=tenant_id, action=action, since=since, limit=limit)
    return json_response({"entries": [_entry_view(row) for row in rows]})


def _entry_view(row) -> dict[str, object]:
    return {
        "id": row.id,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "action": row.action,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "tenant_id": row.tenant_id,
        "before": row.before,
        "after": row.after,
        "request_id": row.request_id,
    }
