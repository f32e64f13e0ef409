"""Browser sessions for the portal and the console (issue 19).

A `billing login-link` URL carries a short-lived JWT. Opening it once (the link is single use)
starts a session kept in Redis; the browser holds only an opaque random id in an HttpOnly,
SameSite=Strict cookie (Secure over TLS), so no script on the page can read a credential.

`SessionCookies` is ASGI middleware in front of the guards. For a request that carries the cookie
and no Authorization header it puts the session's bearer token in the headers, so every page and
every API call the page makes goes through the same role table (serve/access.py) and tenant checks
as any other client: the browser gains no right a token would not have. An unsafe API method
(POST, PUT, PATCH, DELETE) sent with the cookie must also carry the session's CSRF token in
`X-CSRF-Token`; forms carry it as a field, checked by their handler (`check_csrf_form`).

Pages get a content policy that allows only this server's scripts, styles and images (no inline
script), instead of the API's `default-src 'none'` the guards set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from serve.guards import ASGIApp, Message, Receive, Scope, Send
from serve.problems import Problem

COOKIE = "billing_session"
CSRF_HEADER = b"x-csrf-token"
SESSION_TTL_S = 8 * 3600  # a working day; the link that opens it lives minutes
LINK_TTL_S = 600
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Paths a session cookie is honoured on: the pages and the API they call.
COOKIE_PATHS = ("/api/", "/portal", "/console")
PAGE_PATHS = ("/portal", "/console", "/static/portal", "/paypal/")
PAGE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Session:
    token: str  # the bearer JWT the session's requests carry; never sent to the browser
    csrf: str
    role: str
    tenant_id: str | None
    expires_at: int


def _key(prefix: str, session_id: str) -> str:
    # Keyed by a hash of the id: a Redis dump does not hand out live cookies.
    return f"{prefix}:portal:session:{hashlib.sha256(session_id.encode()).hexdigest()}"


async def open_session(redis: Redis, prefix: str, session: Session) -> str:
    """Store `session`; the id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    ttl = max(1, session.expires_at - int(time.time()))
    await redis.set(_key(prefix, session_id), json.dumps(asdict(session)), ex=ttl)
    return session_id


async def find_session(redis: Redis, prefix: str, session_id: str) -> Session | None:
    raw = await redis.get(_key(prefix, session_id))
    if raw is None:
        return None
    return Session(**json.loads(raw))


async def close_session(redis: Redis, prefix: str, session_id: str) -> None:
    await redis.delete(_key(prefix, session_id))


async def spend_link(redis: Redis, prefix: str, token: str, ttl_s: int) -> bool:
    """True the first time a login link's token is used; False after (a forwarded or replayed
    link opens nothing). Remembered for as long as the token could still be valid."""
    key = f"{prefix}:portal:link:{hashlib.sha256(token.encode()).hexdigest()}"
    return bool(await redis.set(key, b"1", nx=True, ex=max(1, ttl_s)))


def csrf_matches(session: Session, offered: str | None) -> bool:
    return offered is not None and hmac.compare_digest(session.csrf.encode(), offered.encode())


def cookie_header(session_id: str, max_age: int, secure: bool) -> str:
    flags = f"{COOKIE}={session_id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return flags + ("; Secure" if secure else "")


def is_tls(scope: Scope) -> bool:
    """Served over TLS: directly, or behind a proxy that terminated it and says so."""
    forwarded = dict(scope.get("headers", [])).get(b"x-forwarded-proto", b"")
    return scope.get("scheme") == "https" or forwarded.lower() == b"https"


def session_of(scope: MutableMapping[str, Any]) -> Session | None:
    """The session the middleware found for this request, if any."""
    found = scope.get("billing.session")
    return found if isinstance(found, Session) else None


def session_id_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, cookie = part.strip().partition("=")
            if key == COOKIE and cookie:
                return cookie
    return None


class SessionCookies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(COOKIE_PATHS):
            refused = await self._attach(scope)
            if refused is not None:
                await refused.response(path)(scope, receive, send)
                return
        if not path.startswith(PAGE_PATHS):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k != b"content-security-policy"]
                message["headers"] = [*kept, (b"content-security-policy", PAGE_CSP)]
            await send(message)

        await self.app(scope, receive, send_with_policy)

    async def _attach(self, scope: Scope) -> Problem | None:
        """Put the session's bearer token on a cookie-carrying request; a Problem to answer
        instead when an unsafe API call lacks the CSRF token."""
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        if any(name == b"authorization" for name, _ in headers):
            return None  # an API client with its own token: the cookie plays no part
        session_id = session_id_of(headers)
        if session_id is None:
            return None
        services = scope["app"].state.services
        session = await find_session(services.redis, services.settings.redis_prefix, session_id)
        if session is None:
            return None  # expired or signed out: the route answers 401 as for no token
        if scope["path"].startswith("/api/") and scope["method"] in UNSAFE:
            offered = dict(headers).get(CSRF_HEADER)
            if not csrf_matches(session, offered.decode("latin-1") if offered else None):
                return Problem(403, "csrf", "Forbidden", "a browser session's request needs X-CSRF-Token")
        scope["headers"] = [*headers, (b"authorization", f"Bearer {session.token}".encode())]
        scope["billing.session"] = session
        scope["billing.session_id"] = session_id
        return None
