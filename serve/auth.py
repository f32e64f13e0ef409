"""Who is calling: bearer JWTs carrying roles (design.md §4), checked per route.

In production tokens are RS256 or ES256, signed by the identity provider with the key their `kid`
names in a JWKS (`BILLING_JWT_JWKS`: a file, or a URL fetched and cached by PyJWT's client);
`exp`, `nbf`, `iat`, `sub`, `iss` and `aud` are all required and checked, with 30 s of clock skew
allowed. Without a JWKS the service takes HS256 tokens signed with the dev key (`billing token`),
for local use only; with one, an HS256 token is refused whatever it claims.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Request

from serve.problems import Problem

ISSUER = "billing-service-dev"
AUDIENCE = "billing-service"
ROLES = ("kernel", "billing-admin", "finance", "viewer", "tenant")
ROLE_SCOPES = {"kernel": ("usage:write",)}
# What a token's signature is checked with: the dev secret (HS256), or the identity provider's
# public key (RS256 or ES256, SIGNED_BY_PROVIDER).
VerifyingKey = str | RSAPublicKey | EllipticCurvePublicKey


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


MAX_SKEW_S = 30
SIGNED_BY_PROVIDER = ["RS256", "ES256"]


class KeySet:
    """The identity provider's public keys by key id, from a JWKS file or URL."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._client = jwt.PyJWKClient(source) if source.startswith(("https://", "http://")) else None
        self._keys: dict[str, jwt.PyJWK] = {}

    def key(self, kid: str) -> jwt.PyJWK:
        if self._client is not None:
            return self._client.get_signing_key(kid)  # cached; refetched for an unknown kid
        if kid not in self._keys:  # a rotated file is reread when a new kid shows up
            keys = jwt.PyJWKSet.from_json(Path(self._source).read_text()).keys
            self._keys = {k.key_id: k for k in keys if k.key_id}
        if kid not in self._keys:
            raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")
        return self._keys[kid]


class Authenticator:
    def __init__(
        self, secret: str, jwks: KeySet | None = None, issuer: str = ISSUER, audience: str = AUDIENCE
    ) -> None:
        self._decode = lru_cache(maxsize=4096)(self._decode_uncached)
        self._secret, self._jwks, self._issuer, self._audience = secret, jwks, issuer, audience

    def _key(self, token: str) -> tuple[VerifyingKey, list[str]]:
        if self._jwks is None:
            return self._secret, ["HS256"]
        kid = jwt.get_unverified_header(token).get("kid")
        if not kid:
            raise jwt.InvalidTokenError("the token names no signing key (kid)")
        jwk = self._jwks.key(kid)
        # Only the algorithm of the key the token names: an RS256 token can never be checked
        # against an EC key (or an HS256 one against a public key used as a secret).
        if jwk.algorithm_name not in SIGNED_BY_PROVIDER:
            raise jwt.InvalidAlgorithmError(f"key {kid!r} is for {jwk.algorithm_name}, not RS256 or ES256")
        return jwk.key, [jwk.algorithm_name]

    def _decode_uncached(self, token: str) -> tuple[Principal, int]:
        key, algorithms = self._key(token)
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=self._audience,
            issuer=self._issuer,
            options={"require": ["exp", "iat", "nbf", "sub"]},
            leeway=MAX_SKEW_S,
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
        if expires + MAX_SKEW_S < time.time():
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
        # Read off the app state directly: serve/services.py, whose `services` types it, imports
        # this module.
        auth: Authenticator = request.app.state.services.auth
        return auth.require(request, roles, scope)

    return dependency


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})
