"""The frozen records the notifications use cases return; the routes render them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: uuid.UUID
    tenant_id: str | None  # None: a platform endpoint, receiving every tenant's events
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    previous_secret_until: datetime | None  # while the rotated-out secret still signs

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.endpoint_id),
            "tenant_id": self.tenant_id,
            "url": self.url,
            "event_types": list(self.event_types),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at.isoformat(),
            "previous_secret_expires_at": None
            if self.previous_secret_until is None
            else self.previous_secret_until.isoformat(),
        }


@dataclass(frozen=True)
class EndpointSecret:
    """An endpoint with its signing secret: shown when made and when rotated, never again."""

    endpoint: Endpoint
    secret: str

    def to_json(self) -> dict[str, Any]:
        return self.endpoint.to_json() | {"secret": self.secret}


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "attempted_at": self.attempted_at.isoformat(),
            "status_code": self.status_code,
            "error": self.error,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Delivery:
    delivery_id: uuid.UUID
    event_id: str  # the webhook-id
    event_type: str
    endpoint_id: uuid.UUID
    status: str  # pending | delivered | failed | cancelled
    attempts: tuple[Attempt, ...]
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.delivery_id),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint_id": str(self.endpoint_id),
            "status": self.status,
            "next_attempt_at": None if self.next_attempt_at is None else self.next_attempt_at.isoformat(),
            "delivered_at": None if self.delivered_at is None else self.delivered_at.isoformat(),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "attempts": [attempt.to_json() for attempt in self.attempts],
        }


@dataclass(frozen=True)
class Alert:
    alert_id: uuid.UUID
    tenant_id: str
    kind: str
    meter: str | None
    threshold: Decimal  # a quantity of the meter, or an amount in major units of `currency`
    currency: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.alert_id),
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "meter": self.meter,
            "threshold": str(self.threshold),
            "currency": self.currency,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Caller:
    """Whose endpoints a caller may manage: one tenant's, or (None, billing-admin) anyone's."""

    tenant_id: str | None

    def may_manage(self, tenant_id: str | None) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id
