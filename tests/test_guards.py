"""Every response carries the security headers; an oversized body is refused with 413 before it
is read, whether it declares its length or streams in chunks."""

from __future__ import annotations

from tests.conftest import auth


def test_security_headers_on_every_response(api, tokens):
    for response in (
        api.get("/healthz"),
        api.get("/api/v1/tenants/nobody", headers=auth(tokens["viewer"])),
        api.get("/api/v1/tenants/nobody"),  # 401
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "default-src 'none'" in response.headers["content-security-policy"]
    for page in ("/docs", "/redoc"):  # their own assets only (tests/test_docs_offline.py opens them)
        policy = api.get(page).headers["content-security-policy"]
        assert "default-src 'self'" in policy and "http" not in policy, policy


def test_an_oversized_body_is_refused_with_413(api, tokens):
    huge = b"x" * (21 * 1024 * 1024)
    declared = api.post(
        "/api/v1/usage", content=huge, headers=auth(tokens["kernel"]) | {"content-type": "application/json"}
    )
    assert declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["type"].endswith("too-large")

    def chunks():
        for _ in range(21):
            yield b"x" * (1024 * 1024)

    streamed = api.post(
        "/api/v1/usage",
        content=chunks(),
        headers=auth(tokens["kernel"]) | {"content-type": "application/json"},
    )
    assert streamed.status_code == 413
