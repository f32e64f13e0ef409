"""What an outbound webhook says: its type and its body `{"id", "type", "created_at", "data"}`.

The id is the Standard Webhooks `webhook-id`: made once when the event is recorded and sent
unchanged on every retry and replay, so a receiver deduplicates by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pricing.errors import InvalidField

ALL = "*"


class EventType(StrEnum):
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    CREDIT_NOTE_CREATED = "credit_note.created"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REFUNDED = "payment.refunded"
    USAGE_THRESHOLD_CROSSED = "usage.threshold_crossed"
    SPEND_THRESHOLD_CROSSED = "spend.threshold_crossed"
    SPEND_FORECAST_EXCEEDS_THRESHOLD = "spend.forecast_exceeds_threshold"
    CREDITS_BALANCE_LOW = "credits.balance_low"
    CREDITS_EXPIRING = "credits.expiring"


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def event_body(event_id: str, type_: EventType, created_at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body every endpoint receives for the event. `data` holds JSON values only (amounts
    as decimal strings in major units, instants as ISO 8601)."""
    return {"id": event_id, "type": type_.value, "created_at": created_at.isoformat(), "data": dict(data)}


def subscription(event_types: object, field: str = "event_types") -> tuple[str, ...]:
    """The event types an endpoint asks for: a non-empty list of known types, or ["*"]."""
    if not isinstance(event_types, list) or not event_types:
        raise InvalidField(field, 'must be a non-empty list of event types, or ["*"] for all')
    known = {t.value for t in EventType}
    chosen: list[str] = []
    for index, value in enumerate(event_types):
        if not isinstance(value, str) or (value != ALL and value not in known):
            raise InvalidField(f"{field}[{index}]", f"must be one of {', '.join(sorted(known))} or *")
        if value not in chosen:
            chosen.append(value)
    if ALL in chosen and len(chosen) > 1:
        raise InvalidField(field, '"*" stands for every type: send it alone')
    return tuple(chosen)


def wants(event_types: Iterable[str], type_: EventType) -> bool:
    chosen = set(event_types)
    return ALL in chosen or type_.value in chosen
