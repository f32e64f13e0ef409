"""SQL for outbound webhooks (migration 0016): endpoints, the outbox of events, deliveries and
their attempts. Rows out; notifications/ turns them into records.

`record_events` runs inside the caller's transaction and fans the event out to the endpoints
subscribed to it at that moment, one delivery row each, in the same statement batch: the event
and its deliveries commit with the change that caused them, or not at all.

Deliveries are claimed with FOR UPDATE SKIP LOCKED under a lease (`lease_until`), as invoice runs
are (infra/run_store.py): any number of workers share the table, and a delivery whose worker died
is claimed again once its lease has run out. A worker records its outcome only while it still
holds the lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from infra.database import any_of
from infra.field_encryption import FieldCipher, is_token
from infra.schema import webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events

SECRET_FIELD = "webhook_endpoints.secret"
ERROR_TEXT_LIMIT = 500


def seal(cipher: FieldCipher, secret: str) -> str:
    return cipher.encrypt(SECRET_FIELD, secret)


def unseal(cipher: FieldCipher, stored: str) -> str:
    return cipher.decrypt(SECRET_FIELD, stored) if is_token(stored) else stored


# -- endpoints ---------------------------------------------------------------------------------


async def insert_endpoint(
    conn: AsyncConnection,
    cipher: FieldCipher,
    tenant_id: str | None,
    url: str,
    event_types: Sequence[str],
    secret: str,
) -> Row[Any]:
    statement = (
        insert(webhook_endpoints)
        .values(
            endpoint_id=uuid.uuid4(),
            tenant_id=tenant_id,
            url=url,
            event_types=list(event_types),
            secret=seal(cipher, secret),
        )
        .returning(webhook_endpoints)
    )
    row: Row[Any] = (await conn.execute(statement)).one()
    return row


async def find_endpoint(conn: AsyncConnection, endpoint_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
    """The endpoint, deleted or not (a deleted one still tells whose it was)."""
    query = select(webhook_endpoints).where(webhook_endpoints.c.endpoint_id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return (await conn.execute(query)).first()


async def list_endpoints(conn: AsyncConnection, tenant_id: str | None) -> list[Row[Any]]:
    """Endpoints not deleted: a tenant's, or (None) all of them."""
    query = select(webhook_endpoints).where(webhook_endpoints.c.deleted_at.is_(None))
    if tenant_id is not None:
        query = query.where(webhook_endpoints.c.tenant_id == tenant_id)
    return list(await conn.execute(query.order_by(webhook_endpoints.c.created_at)))


async def delete_endpoint(conn: AsyncConnection, endpoint_id: uuid.UUID) -> None:
    """Mark the endpoint deleted and cancel what it has still to receive."""
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == endpoint_id, webhook_endpoints.c.deleted_at.is_(None))
        .values(deleted_at=func.now(), enabled=False)
    )
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == "pending")
        .values(status="cancelled", last_error="endpoint deleted", lease_owner=None, lease_until=None)
    )


async def rotate_secret(
    conn: AsyncConnection, cipher: FieldCipher, endpoint_id: uuid.UUID, secret: str, grace_s: float
) -> Row[Any]:
    """A new signing secret; the one it replaces keeps signing for `grace_s` seconds."""
    statement = (
        update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == endpoint_id)
        .values(
            secret=seal(cipher, secret),
            previous_secret=webhook_endpoints.c.secret,
            previous_secret_until=func.now() + timedelta(seconds=grace_s),
        )
        .returning(webhook_endpoints)
    )
    row: Row[Any] = (await conn.execute(statement)).one()
    return row


def signing_secrets(cipher: FieldCipher, row: Row[*tuple[Any, ...]], now: datetime) -> list[str]:
    """The secrets an attempt is signed with: the current one, and the previous one in its grace."""
    found = [unseal(cipher, row.secret)]
    if row.previous_secret and row.previous_secret_until is not None and now < row.previous_secret_until:
        found.append(unseal(cipher, row.previous_secret))
    return found


# -- the outbox --------------------------------------------------------------------------------


async def record_events(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> int:
    """Store the events (each `event_id`, `type`, `tenant_id`, `body`) and one pending delivery per
    event and enabled endpoint that wants it (the tenant's own and the platform's), in two
    statements whatever their number; the number of deliveries."""
    if not events:
        return 0
    await conn.execute(insert(webhook_events), list(events))
    ev, e = webhook_events.c, webhook_endpoints.c
    wanted = or_(
        e.event_types.contains(literal(["*"], JSONB)), e.event_types.contains(func.jsonb_build_array(ev.type))
    )
    # An event of no tenant goes to the platform's endpoints only: `e.tenant_id = NULL` is not true.
    whose = or_(e.tenant_id.is_(None), e.tenant_id == ev.tenant_id)
    subscribed = (
        select(func.gen_random_uuid(), ev.event_id, e.endpoint_id)
        .select_from(
            webhook_events.join(webhook_endpoints, and_(e.enabled, e.deleted_at.is_(None), wanted, whose))
        )
        .where(any_of(ev.event_id, [event["event_id"] for event in events]))
    )
    result = await conn.execute(
        insert(webhook_deliveries).from_select(["delivery_id", "event_id", "endpoint_id"], subscribed)
    )
    return int(result.rowcount or 0)


# -- delivery ----------------------------------------------------------------------------------


async def claim_due(conn: AsyncConnection, owner: str, lease_s: float, limit: int) -> list[Row[Any]]:
    """Up to `limit` due deliveries, now `owner`'s for `lease_s`: pending ones whose time has come
    and nobody holds, or whose holder's lease ran out. Each row carries its event's body and its
    endpoint (url, secrets, enabled)."""
    d = webhook_deliveries.c
    due = (
        select(d.delivery_id)
        .where(
            d.status == "pending",
            d.next_attempt_at <= func.now(),
            or_(d.lease_until.is_(None), d.lease_until < func.now()),
        )
        .order_by(d.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = (
        await conn.execute(
            update(webhook_deliveries)
            .where(d.delivery_id.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_until=func.now() + timedelta(seconds=lease_s))
            .returning(d.delivery_id)
        )
    ).scalars().all()
    if not claimed:
        return []
    query = (
        select(
            webhook_deliveries,
            webhook_events.c.body,
            webhook_events.c.type,
            webhook_events.c.created_at.label("event_created_at"),
            webhook_endpoints.c.url,
            webhook_endpoints.c.secret,
            webhook_endpoints.c.previous_secret,
            webhook_endpoints.c.previous_secret_until,
            webhook_endpoints.c.enabled,
            func.now().label("now"),
        )
        .join(webhook_events, webhook_events.c.event_id == d.event_id)
        .join(webhook_endpoints, webhook_endpoints.c.endpoint_id == d.endpoint_id)
        .where(d.delivery_id.in_(claimed))
        .order_by(d.next_attempt_at)
    )
    return list(await conn.execute(query))


async def record_attempt(
    conn: AsyncConnection,
    delivery_id: uuid.UUID,
    owner: str,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    delivered: bool,
    next_attempt_at: datetime | None,
) -> bool:
    """One attempt's outcome: delivered, to be retried at `next_attempt_at`, or (None) failed for
    good. False when `owner` no longer held the delivery (another worker took it over); the
    attempt is kept all the same."""
    error = None if error is None else error[:ERROR_TEXT_LIMIT]
    await conn.execute(
        insert(webhook_attempts).values(
            delivery_id=delivery_id, status_code=status_code, error=error, duration_ms=duration_ms, worker=owner
        )
    )
    d = webhook_deliveries.c
    values: dict[str, Any] = {
        "attempts": d.attempts + 1,
        "last_status_code": status_code,
        "last_error": error,
        "lease_owner": None,
        "lease_until": None,
    }
    if delivered:
        values |= {"status": "delivered", "delivered_at": func.now()}
    elif next_attempt_at is None:
        values |= {"status": "failed"}
    else:
        values |= {"next_attempt_at": next_attempt_at}
    updated = await conn.execute(
        update(webhook_deliveries)
        .where(d.delivery_id == delivery_id, d.lease_owner == owner, d.status == "pending")
        .values(**values)
        .returning(d.endpoint_id)
    )
    return updated.first() is not None


async def lock_endpoints(conn: AsyncConnection, endpoint_ids: Iterable[uuid.UUID]) -> None:
    """Lock the endpoints' rows, in one order, before the caller touches their deliveries.
    Deleting or disabling an endpoint locks it before its deliveries; a worker recording its
    outcomes locked each delivery and then its endpoint, and a delete in between deadlocked with it
    (PostgreSQL aborted one of the two)."""
    e = webhook_endpoints.c
    ids = sorted(endpoint_ids)
    await conn.execute(select(e.endpoint_id).where(any_of(e.endpoint_id, ids)).order_by(e.endpoint_id).with_for_update())


async def cancel(conn: AsyncConnection, delivery_id: uuid.UUID, owner: str, reason: str) -> None:
    """A delivery whose endpoint was disabled or deleted after it was claimed."""
    d = webhook_deliveries.c
    await conn.execute(
        update(webhook_deliveries)
        .where(d.delivery_id == delivery_id, d.lease_owner == owner, d.status == "pending")
        .values(status="cancelled", last_error=reason, lease_owner=None, lease_until=None)
    )


async def endpoint_succeeded(conn: AsyncConnection, endpoint_id: uuid.UUID) -> None:
    await conn.execute(
        update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == endpoint_id, webhook_endpoints.c.failing_since.is_not(None))
        .values(failing_since=None)
    )


async def endpoint_failed(
    conn: AsyncConnection, endpoint_id: uuid.UUID, window_s: float, reason: str, gave_up: uuid.UUID | None = None
) -> bool:
    """Note a failure; disable the endpoint (and cancel what it has pending) once it has failed
    without a success for `window_s`, or when the delivery `gave_up` has failed its whole retry
    window with no success of the endpoint since its first attempt. True when this disabled it."""
    e = webhook_endpoints.c
    row = (
        await conn.execute(
            update(webhook_endpoints)
            .where(e.endpoint_id == endpoint_id)
            .values(failing_since=func.coalesce(e.failing_since, func.now()))
            .returning(e.failing_since, e.enabled, func.now().label("now"))
        )
    ).one()
    if not row.enabled:
        return False
    failing_for_the_window = row.now - row.failing_since >= timedelta(seconds=window_s)
    if not failing_for_the_window and gave_up is not None:
        first = (
            await conn.execute(
                select(func.min(webhook_attempts.c.attempted_at)).where(webhook_attempts.c.delivery_id == gave_up)
            )
        ).scalar()
        failing_for_the_window = first is not None and row.failing_since <= first
    if not failing_for_the_window:
        return False
    hours = window_s / 3600
    await conn.execute(
        update(webhook_endpoints)
        .where(e.endpoint_id == endpoint_id)
        .values(enabled=False, disabled_reason=f"every delivery failed for {hours:g} h; the last: {reason}"[:500])
    )
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id, webhook_deliveries.c.status == "pending")
        .values(status="cancelled", last_error="endpoint disabled", lease_owner=None, lease_until=None)
    )
    return True


async def outbox_lag_s(conn: AsyncConnection) -> float:
    """How long the oldest due, undelivered delivery has waited past its time (0: none waits)."""
    d = webhook_deliveries.c
    oldest = (
        await conn.execute(
            select(func.extract("epoch", func.now() - func.min(d.next_attempt_at))).where(
                d.status == "pending", d.next_attempt_at <= func.now()
            )
        )
    ).scalar()
    return float(oldest or 0.0)


# -- reading and replaying ---------------------------------------------------------------------


async def list_deliveries(
    conn: AsyncConnection, endpoint_ids: Sequence[uuid.UUID], limit: int
) -> list[Row[Any]]:
    d = webhook_deliveries.c
    query = (
        select(webhook_deliveries, webhook_events.c.type.label("event_type"))
        .join(webhook_events, webhook_events.c.event_id == d.event_id)
        .where(d.endpoint_id.in_(list(endpoint_ids)))
        .order_by(d.created_at.desc(), d.delivery_id)
        .limit(limit)
    )
    return list(await conn.execute(query))


async def find_delivery(conn: AsyncConnection, delivery_id: uuid.UUID) -> Row[Any] | None:
    d = webhook_deliveries.c
    query = (
        select(webhook_deliveries, webhook_events.c.type.label("event_type"))
        .join(webhook_events, webhook_events.c.event_id == d.event_id)
        .where(d.delivery_id == delivery_id)
    )
    return (await conn.execute(query)).first()


async def attempts_of(conn: AsyncConnection, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Row[Any]]]:
    found: dict[uuid.UUID, list[Row[Any]]] = {delivery_id: [] for delivery_id in delivery_ids}
    rows = await conn.execute(
        select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(webhook_attempts.c.attempt_id)
    )
    for row in rows:
        found[row.delivery_id].append(row)
    return found


async def replay(conn: AsyncConnection, delivery_id: uuid.UUID, retry_window_s: float) -> None:
    """Send the delivery again now (same webhook-id), with a fresh retry window."""
    d = webhook_deliveries.c
    await conn.execute(
        update(webhook_deliveries)
        .where(d.delivery_id == delivery_id)
        .values(
            status="pending",
            next_attempt_at=func.now(),
            give_up_at=func.now() + timedelta(seconds=retry_window_s),
            lease_owner=None,
            lease_until=None,
            delivered_at=None,
        )
    )


