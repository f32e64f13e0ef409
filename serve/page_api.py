"""The pages read and act through the service's own API, in process.

A page handler does not query the stores itself: it calls the same routes a client would, with
the session's bearer token, over an ASGI transport (no socket, no second process). So a page can
show nothing its signed-in role could not fetch as JSON, and the role table and tenant checks
stay in one place (serve/access.py and the routes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Self

import httpx
from fastapi import Request

TIMEOUT_S = 20.0


class PageApi:
    def __init__(self, request: Request) -> None:
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=request.app),
            base_url="http://127.0.0.1",
            headers={"authorization": request.headers.get("authorization", "")},
            timeout=TIMEOUT_S,
        )
        self.answered: dict[str, int] = {}  # path -> the status of its last read, to say why a part is absent

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: str | int) -> Any:
        """The JSON body of a 200; None for any other answer (the page shows the part as absent:
        no forecast trained yet, no churn model, a role that may not read it)."""
        # Only when given: httpx replaces a path's own query string with `params`, even an empty one.
        response = await self._client.get(path, params=params) if params else await self._client.get(path)
        self.answered[path] = response.status_code
        return response.json() if response.status_code == 200 else None

    async def get_many(self, paths: Mapping[str, str]) -> dict[str, Any]:
        """Several reads at once; the page is as slow as its slowest part, not their sum."""
        names = list(paths)
        found = await asyncio.gather(*(self.get(paths[name]) for name in names))
        return dict(zip(names, found, strict=True))

    async def post(self, path: str, body: object, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return await self._client.post(path, json=body, headers=dict(headers or {}))
