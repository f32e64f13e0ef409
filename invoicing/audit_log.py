"""Reading the audit log: who changed money, when, and what it was before and after (issue 7).

Entries are written by the actions themselves, in their own transactions (infra/audit_store.py);
this is the one read of them. It lives in invoicing/, the use-case home of what finance reads
(invoices, runs, credits, prices), rather than in a package of its own (design.md §8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import audit_store


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str  # "<subject>.<what happened>", e.g. invoice.finalized
    subject_type: str
    subject_id: str
    tenant_id: str | None
    before: Any  # the JSON the action recorded: its shape is the action's own
    after: Any
    request_id: str | None

    @classmethod
    def of(cls, row: Any) -> AuditEntry:
        return cls(
            row.id,
            row.at,
            row.actor,
            row.action,
            row.subject_type,
            row.subject_id,
            row.tenant_id,
            row.before,
            row.after,
            row.request_id,
        )


async def audit_entries(
    engine: AsyncEngine,
    *,
    tenant_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> tuple[AuditEntry, ...]:
    """Entries matching every filter given, the newest first."""
    async with engine.connect() as conn:
        rows = await audit_store.entries(conn, tenant_id=tenant_id, action=action, since=since, limit=limit)
    return tuple(AuditEntry.of(row) for row in rows)
