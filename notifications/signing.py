"""Standard Webhooks signing (https://www.standardwebhooks.com/): `whsec_` secrets and the three
headers, made with the `standardwebhooks` library so receivers verify with the same code.

While a rotated-out secret is in its grace period, `webhook-signature` carries both signatures,
space-separated (the specification's way), so a receiver still holding the old secret verifies.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def headers(event_id: str, at: datetime, body: bytes, signing_secrets: Sequence[str]) -> dict[str, str]:
    """The headers of one attempt: `at` is the attempt's time (receivers refuse stale ones)."""
    signatures = " ".join(Webhook(secret).sign(event_id, at, body) for secret in signing_secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "billing-service-webhooks/1",
    }
