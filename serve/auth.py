"""Who is calling: bearer JWTs carrying roles (design.md §4), checked per route.

HS256 with a dev key file for now; RS256/ES256 with a JWKS is issue 7's hardening.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

import jwt
from fastapi import Request

from serve.problems import Problem

ISSUER = "billing-service-dev"
AUDIENCE = "billing-service"
ROLES = ("kernel", "billing-admin", "finance", "viewer", "tenant")
ROLE_SCOPES = {"kernel": ("usage:write",)}


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    scopes: frozenset[str]
    tenant_id: str | None

    def may_read_tenant(self, tenant_id: str) -> bool:
        staff = self.roles & {"billing-admin", "finance", "viewer"}
        return bool(staff) or ("tenant" in self.roles and self.tenant_id == tenant_id)


def mint(
    secret: str, role: str, tenant_id: str | None = None, ttl_s: int = 86_400, subject: str | None = None
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role == "tenant" and not tenant_id:
        raise ValueError("a tenant token needs --tenant")
    now = int(time.time())
    claims = {
        "sub": subject or (f"tenant:{tenant_id}" if tenant_id else role),
        "roles": [role],
        "scope": " ".join(ROLE_SCOPES.get(role, ())),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
    }
    if tenant_id:
        claims["tenant_id"] = tenant_id
    return jwt.encode(claims, secret, algorithm="HS256")


class Authenticator:
    def __init__(self, secret: str) -> None:
        self._decode = lru_cache(maxsize=4096)(self._decode_uncached)
        self._secret = secret

    def _decode_uncached(self, token: str) -> tuple[Principal, int]:
        claims = jwt.decode(
            token,
            self._secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"]},
            leeway=30,
        )
        roles = claims.get("roles") or []
        principal = Principal(
            subject=str(claims["sub"]),
            roles=frozenset(r for r in roles if r in ROLES),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            tenant_id=claims.get("tenant_id"),
        )
        return principal, int(claims["exp"])

    def principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("a bearer token is required")
        try:
            # Cached decodes skip the signature check on repeats; expiry is re-checked each time.
            principal, expires = self._decode(token)
        except jwt.PyJWTError as error:
            raise _unauthorized(f"invalid token: {error}") from None
        if expires + 30 < time.time():
            raise _unauthorized("invalid token: Signature has expired")
        return principal

    def require(self, request: Request, roles: tuple[str, ...] = (), scope: str | None = None) -> Principal:
        principal = self.principal(request)
        if scope is not None and scope not in principal.scopes:
            raise Problem(403, "forbidden", "Forbidden", f"this route needs scope {scope!r}")
        if roles and not principal.roles & set(roles):
            raise Problem(
                403, "forbidden", "Forbidden", f"this route needs one of the roles {', '.join(roles)}"
            )
        return principal


def allow(*roles: str, scope: str | None = None) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller, when it has one of `roles` (and `scope`). As a
    dependency it runs before the body is validated, so a stranger learns nothing from a 422."""

    # async, so FastAPI calls it inline instead of hopping to a worker thread per request
    async def dependency(request: Request) -> Principal:
        return request.app.state.services.auth.require(request, roles, scope)

    return dependency


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
