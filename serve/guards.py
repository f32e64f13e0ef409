"""Two guards in front of every route, as plain ASGI middleware (cheap on the ingest path):

- Security headers on every response: no MIME sniffing, no framing, no referrer, no caching of
  billing data, HTTPS only (HSTS), and a content policy that allows nothing; the /docs and
  /redoc pages may load what this server serves them (serve/docs.py) and nothing from elsewhere.
- A request body larger than the limit is refused with 413 problem+json before it is read: by its
  Content-Length, or, for a chunked upload, as soon as the bytes read pass the limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serve.problems import Problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 20 * 1024 * 1024  # a 5,000-event usage batch is ~1.5 MB; bank statements are larger
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    # Browsers honour it only over HTTPS (RFC 6797 §8.1): where TLS is terminated, HTTPS only.
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
]
API_ONLY = [(b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")]
DOCS = ("/docs", "/redoc")
# FastAPI's two pages start their UI with an inline script; ReDoc runs its search in a blob: worker
# and would fetch its logo from a CDN (refused here, so an air-gapped browser waits on nothing).
DOCS_ONLY = [
    (
        b"content-security-policy",
        (
            b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
        ),
    )
]


class BodyTooLarge(Exception):
    pass


class Guards:
    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = HEADERS + (DOCS_ONLY if scope["path"].startswith(DOCS) else API_ONLY)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + headers
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, send_with_headers)
            return
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except BodyTooLarge:
            await self._too_large(scope, send_with_headers)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        limit = f"{self.max_body_bytes // (1024 * 1024)} MiB"
        problem = Problem(413, "too-large", "Request body too large", f"the body exceeds {limit}")
        await problem.response(scope["path"])(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
