"""Tokens from the identity provider: RS256/ES256 signed with a key named by `kid` in a JWKS, every
registered claim checked, bounded clock skew; HS256 dev tokens refused once a JWKS is set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.requests import Request

from serve.auth import Authenticator, KeySet, mint
from serve.problems import Problem

ISSUER, AUDIENCE = "https://id.example.com/", "billing-service"
DEV_SECRET = "a-dev-secret-of-at-least-32-bytes!!"
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    keys = [
        json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key())) | {"kid": "ec-1", "alg": "ES256"},
        json.loads(RSAAlgorithm.to_jwk(RSA_KEY.public_key())) | {"kid": "rsa-1", "alg": "RS256"},
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return path


def token(key=EC_KEY, algorithm="ES256", kid="ec-1", **overrides) -> str:
    now = int(time.time())
    claims = {
        "sub": "svc:kernel-7",
        "roles": ["kernel"],
        "scope": "usage:write",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    } | overrides
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers=None if kid is None else {"kid": kid})


def request_with(bearer: str) -> Request:
    return Request({"type": "http", "headers": [(b"authorization", f"Bearer {bearer}".encode())]})


def authenticator(jwks: Path) -> Authenticator:
    return Authenticator(DEV_SECRET, KeySet(str(jwks)), ISSUER, AUDIENCE)


def test_es256_and_rs256_tokens_from_the_jwks_are_accepted(jwks):
    auth = authenticator(jwks)
    for signed in (token(), token(RSA_KEY, "RS256", "rsa-1")):
        principal = auth.require(request_with(signed), (), "usage:write")
        assert principal.subject == "svc:kernel-7" and principal.roles == {"kernel"}


@pytest.mark.parametrize(
    "bad, why",
    [
        (lambda: token(kid="ec-2"), "no key 'ec-2'"),
        (lambda: token(kid=None), "names no signing key"),
        (lambda: token(RSA_KEY, "RS256", "ec-1"), "alg value is not allowed"),  # was a TypeError, a 500
        (lambda: token(ec.generate_private_key(ec.SECP256R1())), "Signature verification failed"),
        (lambda: token(exp=int(time.time()) - 120), "expired"),
        (lambda: token(nbf=int(time.time()) + 120), "not yet valid"),
        (lambda: token(iss="https://evil.example.com/"), "issuer"),
        (lambda: token(aud="someone-else"), "audience"),
        (lambda: token(nbf=None), "nbf"),
        (lambda: mint(DEV_SECRET, "kernel"), "names no signing key"),  # HS256 dev token
        (lambda: jwt.encode({"sub": "x"}, DEV_SECRET, algorithm="HS256", headers={"kid": "ec-1"}), "alg"),
    ],
)
def test_a_token_that_fails_any_check_is_401_with_the_reason(jwks, bad, why):
    with pytest.raises(Problem) as refused:
        authenticator(jwks).require(request_with(bad()))
    assert refused.value.status == 401 and why.lower() in refused.value.detail.lower(), refused.value.detail


def test_skew_within_30_seconds_is_tolerated(jwks):
    early = token(nbf=int(time.time()) + 20)
    assert authenticator(jwks).require(request_with(early)).subject == "svc:kernel-7"


def test_a_key_added_to_the_file_is_picked_up(jwks, tmp_path):
    auth = authenticator(jwks)
    new_key = ec.generate_private_key(ec.SECP256R1())
    document = json.loads(jwks.read_text())
    document["keys"].append(
        json.loads(ECAlgorithm.to_jwk(new_key.public_key())) | {"kid": "ec-2", "alg": "ES256"}
    )
    jwks.write_text(json.dumps(document))
    assert auth.require(request_with(token(new_key, kid="ec-2"))).subject == "svc:kernel-7"
