"""The receiving end of bench/webhook_deliveries.py: an ASGI app under uvicorn, in a process of
its own, standing in for many tenants' receivers. A POST to /hooks/<tenant> is verified as that
tenant's code would verify it (the `standardwebhooks` package, the endpoint's secret), then
answered 204, or 400 when it does not verify (so the worker would retry it). It notes when it
acknowledged each delivery; GET /report hands the notes over as JSON.

    python bench/webhook_receiver.py PORT SECRETS_JSON   # {"<tenant>": "whsec_..."}
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import orjson
import uvicorn
from standardwebhooks import Webhook, WebhookVerificationError

Scope = dict[str, Any]


class Receiver:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.verifiers = {tenant: Webhook(secret) for tenant, secret in secrets.items()}
        # [webhook-id, tenant, event type or None, acknowledged at (epoch s), verified]
        self.notes: list[tuple[str, str, str | None, float, bool]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET" and scope["path"] == "/report":
            await _answer(send, 200, orjson.dumps(self.notes))
            return
        tenant = scope["path"].removeprefix("/hooks/")
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        event_type, verified = None, False
        verifier = self.verifiers.get(tenant)
        if verifier is not None:
            try:
                event_type, verified = verifier.verify(body, headers)["type"], True
            except WebhookVerificationError:
                pass
        self.notes.append((headers.get("webhook-id", ""), tenant, event_type, time.time(), verified))
        await _answer(send, 204 if verified else 400, b"")


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    port, secrets_file = int(sys.argv[1]), sys.argv[2]
    with open(secrets_file) as file:
        secrets = json.load(file)
    uvicorn.run(Receiver(secrets), host="127.0.0.1", port=port, log_level="error", access_log=False)


if __name__ == "__main__":
    main()
