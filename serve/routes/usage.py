"""Usage: ingest from the kernel, and live reads per tenant or grouped for finance."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from actors.accumulator import EXACT
from actors.layout import LayoutUnreadable
from actors.live_usage import UsageNotSettled, live_rows, roll_up
from actors.usage_log import LayoutChanging, RateCheck, RateLimited
from actors.usage_store import HourRow, tiers_of
from infra import metrics
from pricing.meters import METERS
from pricing.periods import on_whole_hour
from serve.access import authorized
from serve.auth import Principal
from serve.client_certificates import kernel_certificate
from serve.instants import RFC_3339
from serve.problems import MAYBE_PART_ACCEPTED, Problem, unavailable
from serve.rate_limits import RateLimit
from serve.services import services
from serve.usage_events import BODY_SCHEMA, TENANT_ID, parse

router = APIRouter(prefix="/api/v1", tags=["usage"])
MAX_RANGE = timedelta(days=400)
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@router.post(
    "/usage",
    status_code=202,
    summary="Post usage from the kernel (one record or a batch)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BODY_SCHEMA}},
        }
    },
    responses={202: {"description": '{"queued": true, "accepted": N, "duplicates": M}'}},
)
async def ingest(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    _certificate: Annotated[str | None, Depends(kernel_certificate)],  # after the JWT: 401 before 403
) -> Response:
    svc = services(request)
    if not svc.database_up:
        metrics.ingest_unavailable.inc(tags={"dependency": "postgresql"})
        raise unavailable("PostgreSQL", 5)
    settings = svc.settings
    try:
        _require_json(request)
        events = parse(
            await request.body(),
            datetime.now(UTC),
            settings.late_window_s,
            settings.future_skew_s,
            settings.max_batch,
        )
    except Problem as problem:
        metrics.events_rejected.inc(max(1, len(problem.errors)))
        raise
    # Set by `admit` (serve/rate_limits.py) when the client's ingest is limited: the append counts it.
    limit: RateLimit | None
    rate: RateCheck | None
    limit, rate = getattr(request.state, "rate_limit", (None, None))
    try:
        result = await svc.usage_log.append(events, rate)
    except RateLimited as refused:
        assert limit is not None  # only an append given a rate refuses
        metrics.rate_limited.inc(tags={"limit": "ingest"})
        raise limit.refusal(max(1, math.ceil(refused.retry_after_ms / 1000))) from None
    except (RedisError, OSError):
        metrics.ingest_unavailable.inc(tags={"dependency": "redis"})
        raise unavailable("Redis", 1, MAYBE_PART_ACCEPTED) from None
    except LayoutUnreadable:  # reading a changed shard layout
        metrics.ingest_unavailable.inc(tags={"dependency": "postgresql"})
        raise unavailable("PostgreSQL", 5, MAYBE_PART_ACCEPTED) from None
    except LayoutChanging:
        metrics.ingest_unavailable.inc(tags={"dependency": "shard-layout"})
        raise Problem(
            503,
            "shard-layout-changing",
            "The usage shards are being rebalanced",
            "Send the request again: events already accepted will be reported as duplicates.",
            headers={"Retry-After": "1"},
        ) from None
    metrics.events_accepted.inc(result.accepted)
    metrics.events_duplicate.inc(result.duplicates)
    return _json({"queued": True, "accepted": result.accepted, "duplicates": result.duplicates}, 202)


def _require_json(request: Request) -> None:
    """Only a JSON body is read as one: a form or text body is refused, not guessed at."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        message = f"must be application/json, not {media_type or 'missing'}"
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Content-Type: {message}",
            [{"field": "Content-Type", "message": message}],
        )


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The query's [from, to); by default the current UTC month up to the end of this hour."""
    now = datetime.now(UTC)
    end = end or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = start or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for name, value in (("from", start), ("to", end)):
        if value.tzinfo is None:
            raise _bad_query(name, "timestamp must carry a timezone offset")
        if not EARLIEST <= value <= LATEST:
            raise _bad_query(name, "must be between 1970 and 9999")
        # Usage is kept per hour: a bound inside an hour would cut a row no one can split.
        if not on_whole_hour(value):
            raise _bad_query(name, "must fall on a whole UTC hour, e.g. 2026-11-01T00:00:00Z")
    if not start < end or end - start > MAX_RANGE:
        raise _bad_query("to", "must be after from, at most 400 days later")
    return start, end


def _bad_query(field: str, message: str) -> Problem:
    return Problem(
        422, "validation", "Invalid query", f"{field}: {message}", [{"field": field, "message": message}]
    )


def _quantities(values: Sequence[Decimal]) -> dict[str, str]:
    return {meter.value: format(value.normalize(EXACT), "f") for meter, value in zip(METERS, values)}


async def _live(
    request: Request, tenant_ids: list[str] | None, start: datetime, end: datetime
) -> list[HourRow]:
    svc = services(request)
    try:
        return await live_rows(svc.engine, svc.shard_directory, tenant_ids, start, end)
    except UsageNotSettled:
        raise Problem(
            503, "unavailable", "Live usage is unavailable", "retry shortly", headers={"Retry-After": "1"}
        ) from None


@router.get("/usage/{tenant_id}", summary="A tenant's usage per hour or day, live")
async def tenant_usage(
    request: Request,
    # A tenant id ingest would take, so the live read never runs on one that cannot exist (with a
    # NUL character it failed inside the shards as a 503; found by tests/test_fuzz_api.py).
    tenant_id: Annotated[str, Path(pattern=TENANT_ID)],
    principal: Annotated[Principal, Depends(authorized)],
    start: Annotated[datetime | None, Query(alias="from"), RFC_3339] = None,
    end: Annotated[datetime | None, Query(alias="to"), RFC_3339] = None,
    granularity: Literal["hour", "day"] = "hour",
) -> Response:
    if not principal.may_read_tenant(tenant_id):
        raise Problem(403, "forbidden", "Forbidden", "a tenant token reads only its own usage")
    start, end = _window(start, end)
    rows = roll_up(await _live(request, [tenant_id], start, end), 3600 if granularity == "hour" else 86400)
    return _json(
        {
            "tenant_id": tenant_id,
            "granularity": granularity,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "rows": [
                {"start": datetime.fromtimestamp(h, UTC).isoformat(), **_quantities(q)} for _, h, q in rows
            ],
        }
    )


@router.get("/usage", summary="Usage summed per tier or per tenant, live (finance)")
async def grouped_usage(
    request: Request,
    _: Annotated[Principal, Depends(authorized)],
    group_by: Literal["tier", "tenant"] = "tier",
    start: Annotated[datetime | None, Query(alias="from"), RFC_3339] = None,
    end: Annotated[datetime | None, Query(alias="to"), RFC_3339] = None,
) -> Response:
    svc = services(request)
    start, end = _window(start, end)
    per_tenant = roll_up([(t, 0, q) for t, _, q in await _live(request, None, start, end)], 1)
    tiers = await tiers_of(svc.engine, [t for t, _, _ in per_tenant])
    groups: list[dict[str, object]]
    if group_by == "tenant":
        groups = [
            {"tenant_id": t, "tier": tiers.get(t, "unassigned"), **_quantities(q)} for t, _, q in per_tenant
        ]
    else:
        tier_of = {t: tiers.get(t, "unassigned") for t, _, _ in per_tenant}
        by_tier = roll_up([(tier_of[t], 0, q) for t, _, q in per_tenant], 1)
        counts = Counter(tier_of.values())
        groups = [{"tier": tier, "tenants": counts[tier], **_quantities(q)} for tier, _, q in by_tier]
    return _json({"group_by": group_by, "from": start.isoformat(), "to": end.isoformat(), "groups": groups})
