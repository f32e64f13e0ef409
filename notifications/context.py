"""What the notifications use cases are given: built once per process by the composition root
(serve/services.py) from Settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from infra.field_encryption import FieldCipher


@dataclass(frozen=True)
class NotificationContext:
    engine: AsyncEngine
    cipher: FieldCipher  # seals the endpoints' signing secrets at rest
    allow_private: bool  # BILLING_WEBHOOK_ALLOW_PRIVATE
    secret_grace_s: float  # how long a rotated-out secret keeps signing
    retry_window_s: float  # a replayed delivery is retried this long again
