"""A local HashiCorp Vault answering the KV v2 calls `hvac` makes for one secret engine.

Supported (`X-Vault-Token` required): `GET /v1/{mount}/data/{path}` (latest version, or
`?version=n`) and `POST /v1/{mount}/data/{path}` with `{"data": …, "options": {"cas": n}}`, where a
cas that is not the current version is refused with 400 as Vault does. Versions are kept.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from payments.sandbox.local_http import LocalHTTPServer, Request, Response


def _errors(status: int, *messages: str) -> Response:
    return Response.json(status, {"errors": list(messages)})


class VaultServer(LocalHTTPServer):
    def __init__(self, token: str = "local-root-token", mount: str = "secret", port: int = 0) -> None:
        super().__init__(port)
        self.token = token
        self.mount = mount
        self.secrets: dict[str, list[dict[str, Any]]] = {}  # path -> versions, oldest first

    def unavailable(self, status: int) -> Response:
        return _errors(status, "Vault is sealed")

    def handle(self, request: Request) -> Response:
        if request.headers.get("x-vault-token") != self.token:
            return _errors(403, "permission denied")
        match = re.fullmatch(rf"/v1/{re.escape(self.mount)}/data/(.+)", request.path)
        if match is None:
            return _errors(404)
        path = match[1]
        if request.method == "GET":
            return self._read(path, request.query.get("version"))
        if request.method in ("POST", "PUT"):
            return self._write(path, request.json())
        return _errors(405)

    def _read(self, path: str, version: str | None) -> Response:
        versions = self.secrets.get(path)
        if not versions:
            return _errors(404)
        chosen = versions[int(version) - 1] if version else versions[-1]
        return Response.json(200, {"request_id": secrets.token_hex(8), "data": chosen})

    def _write(self, path: str, body: dict[str, Any]) -> Response:
        versions = self.secrets.setdefault(path, [])
        cas = (body.get("options") or {}).get("cas")
        if cas is not None and int(cas) != len(versions):
            return _errors(400, "check-and-set parameter did not match the current version")
        metadata = {
            "version": len(versions) + 1,
            "created_time": datetime.now(UTC).isoformat(),
            "deletion_time": "",
            "destroyed": False,
            "custom_metadata": None,
        }
        versions.append({"data": dict(body.get("data") or {}), "metadata": metadata})
        return Response.json(200, {"request_id": secrets.token_hex(8), "data": metadata})
