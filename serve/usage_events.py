"""The body of POST /usage: validation, the time window, event ids, and encoding for the log."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from actors.accumulator import EXACT, encode_event
from actors.usage_log import EncodedEvent
from pricing.meters import METERS
from serve.problems import Problem, field_path, unprocessable, validation_errors

TENANT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# Bounds keep every sum exact (see actors.accumulator.EXACT) and NUMERIC-friendly.
Quantity = Annotated[Decimal, Field(ge=0, le=Decimal("1e18"), decimal_places=12, allow_inf_nan=False)]


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpu_seconds: Quantity = Decimal(0)
    memory_gb_hours: Quantity = Decimal(0)
    storage_gb_hours: Quantity = Decimal(0)
    network_gb: Quantity = Decimal(0)
    executions: Annotated[int, Field(ge=0, le=10**18, strict=True)] = 0


class UsageRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(pattern=TENANT_ID)]
    timestamp: AwareDatetime
    usage: Usage
    event_id: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,128}$")] | None = None


class UsageBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Annotated[list[UsageRecord], Field(min_length=1)]


# For the OpenAPI document only; parsing picks the model by the body's first key (see _is_batch).
UsageBody = TypeAdapter(UsageBatch | UsageRecord)
_BATCH_START = re.compile(rb'\s*\{\s*"events"')


def _is_batch(body: bytes) -> bool:
    """A batch is an object whose only key is "events"; anything else must be a record, and is
    validated (and refused) as one. Deciding on the bytes spares pydantic a union."""
    return _BATCH_START.match(body) is not None


def derived_event_id(record: UsageRecord) -> str:
    """The idempotency key of a record sent without one: a hash of its canonical form (tenant,
    UTC timestamp to the microsecond, each meter's normalised quantity). Two identical records
    without ids are therefore one event sent twice."""
    canonical = "|".join(
        [record.tenant_id, record.timestamp.astimezone(UTC).isoformat(timespec="microseconds")]
        + [format(Decimal(getattr(record.usage, m)).normalize(EXACT), "f") for m in METERS]
    )
    return "derived:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def parse(
    body: bytes, now: datetime, late_window_s: int, future_skew_s: int, max_batch: int
) -> list[UsageRecord]:
    """Validated records, or a 422 Problem naming every rejected event and field."""
    batch = _is_batch(body)
    try:
        records = (
            UsageBatch.model_validate_json(body).events if batch else [UsageRecord.model_validate_json(body)]
        )
    except ValidationError as error:
        raise unprocessable(validation_errors(error), "Invalid usage") from None
    if len(records) > max_batch:
        raise Problem(
            413,
            "batch-too-large",
            "Batch too large",
            f"events: at most {max_batch} per request, got {len(records)}",
        )
    earliest, latest = now.timestamp() - late_window_s, now.timestamp() + future_skew_s
    errors = []
    for index, record in enumerate(records):
        at = record.timestamp.timestamp()
        if not earliest <= at <= latest:
            why = (
                f"more than {future_skew_s} s in the future"
                if at > latest
                else f"older than the late-event window of {late_window_s} s"
            )
            loc = ["events", index, "timestamp"] if batch else ["timestamp"]
            errors.append({"field": field_path(loc), "message": f"timestamp is {why}"})
    if errors:
        raise unprocessable(errors, "Invalid usage")
    return records


def encode(records: list[UsageRecord]) -> list[EncodedEvent]:
    """The records as usage-log events, bucketed to their UTC hour."""
    events = []
    for record in records:
        usage = record.usage
        line = encode_event(
            record.tenant_id,
            int(record.timestamp.timestamp()) // 3600 * 3600,
            (
                usage.cpu_seconds,
                usage.memory_gb_hours,
                usage.storage_gb_hours,
                usage.network_gb,
                usage.executions,
            ),
        )
        events.append(EncodedEvent(record.tenant_id, record.event_id or derived_event_id(record), line))
    return events
