"""SQL for the audit log: one row per money-affecting action (issue 7), written in the caller's
transaction, so an action and its entry commit together or not at all, and read back for
GET /api/v1/audit.

`before` and `after` are JSON: amounts go in as Decimal or Money and are stored as decimal strings
("12.70"), never as binary floats; dates and instants as ISO 8601. The request an entry was made
for (the API's X-Request-ID) is taken from `REQUEST_ID`, which the API sets per request, so the
service layer does not carry it through every call.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.card_numbers import mask
from infra.schema import audit_log
from pricing.money import Money

# The request being served (X-Request-ID); None for work the system starts itself.
REQUEST_ID: ContextVar[str | None] = ContextVar("audit_request_id", default=None)

# Who acts when nobody calls the API: the system's own actors.
INVOICE_RUN = "invoice-run"
DUNNING = "dunning"


def webhook_actor(provider: str) -> str:
    return f"webhook:{provider}"


def cli_actor() -> str:
    """The operating-system user running a CLI command, as `cli:<user>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry and no LOGNAME (some containers)
        return "cli:unknown"


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str  # "<subject>.<what happened>", e.g. "invoice.finalized"
    subject_type: str
    subject_id: str
    tenant_id: str | None
    before: Mapping[str, object] | None
    after: Mapping[str, object] | None


async def record(
    conn: AsyncConnection,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: object,
    tenant_id: str | None,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> None:
    """Append one entry in the caller's transaction."""
    entry = Entry(actor, action, subject_type, str(subject_id), tenant_id, before, after)
    await record_many(conn, [entry])


async def record_many(conn: AsyncConnection, entries: Iterable[Entry]) -> None:
    """Append entries in the caller's transaction, in one round trip (an invoice run's batch
    finalizes hundreds of invoices in one transaction)."""
    request_id = REQUEST_ID.get()
    rows = [
        {
            "actor": entry.actor,
            "action": entry.action,
            "subject_type": entry.subject_type,
            "subject_id": entry.subject_id,
            "tenant_id": entry.tenant_id,
            "before": json_safe(entry.before),
            "after": json_safe(entry.after),
            "request_id": request_id,
        }
        for entry in entries
    ]
    if rows:
        # A list of parameters, not `.values(rows)`: one statement compiled once and cached, where a
        # multi-row VALUES is compiled again for every count of rows.
        await conn.execute(insert(audit_log), rows)


def json_safe(value: object) -> object:
    """`value` with every amount as a decimal string and every date as ISO 8601, and any card
    number in a text masked (infra/card_numbers.py). Anything else that JSON cannot hold is a bug
    in the caller, and raises TypeError."""
    if value is None or isinstance(value, bool | int) and not isinstance(value, Enum):
        return value
    if isinstance(value, str) and not isinstance(value, Enum):
        # Free text reaches the log from many places (names, reasons, provider messages); the API
        # refuses card numbers in what it takes, and this keeps any that come another way masked.
        return mask(value)
    if isinstance(value, Enum):
        return json_safe(value.value)
    if isinstance(value, Decimal):
        return format(value, "f")  # "1E+2" would read as a float to many JSON consumers
    if isinstance(value, Money):
        return value.format_major()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_safe(item) for item in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    raise TypeError(f"{type(value).__name__} has no audit-log JSON form: {value!r}")


async def entries(
    conn: AsyncConnection,
    *,
    tenant_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Row[Any]]:
    """Entries matching every filter given, the newest first."""
    query = select(audit_log)
    if tenant_id is not None:
        query = query.where(audit_log.c.tenant_id == tenant_id)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return list(await conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit)))
