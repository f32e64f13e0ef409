"""Liveness and readiness."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from serve.services import Services, services

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready: PostgreSQL, Redis and every shard actor answer")
async def readyz(request: Request) -> Response:
    svc = services(request)
    checks = {
        "postgresql": await svc.database_answers(),
        "redis": await svc.redis_answers(),
        "shards": await _shards_answer(svc),
    }
    ready = all(checks.values())
    return Response(
        orjson.dumps({"ready": ready, "checks": checks}),
        status_code=200 if ready else 503,
        media_type="application/json",
    )


async def _shards_answer(svc: Services) -> bool:
    try:
        async with asyncio.timeout(2):
            handles = [svc.shard_directory.handle(s) for s in range(svc.shard_directory.count)]
            await asyncio.gather(*(h.ready.remote() for h in handles))
        return True
    except Exception:  # noqa: BLE001 - missing, restarting or slow: not ready
        return False
