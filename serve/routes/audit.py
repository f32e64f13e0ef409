"""The audit log: who changed money, when, and what it was before and after (issue 7). Read-only
here (invoicing/audit_log.py); entries are written by the actions themselves, in their own
transactions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime
from starlette.responses import Response

from invoicing.audit_log import AuditEntry, audit_entries
from serve.access import authorized
from serve.auth import Principal
from serve.instants import RFC_3339
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
    since: Annotated[
        AwareDatetime | None, Query(description="entries at or after this instant"), RFC_3339
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    entries = await audit_entries(
        services(request).engine, tenant_id=tenant_id, action=action, since=since, limit=limit
    )
    return json_response({"entries": [_entry_view(entry) for entry in entries]})


def _entry_view(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "subject_type": entry.subject_type,
        "subject_id": entry.subject_id,
        "tenant_id": entry.tenant_id,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
    }
