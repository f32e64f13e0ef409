"""The whole service wired in one place: Ray, the shard actors, and the API on Serve."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve import Application
from redis.asyncio import Redis

from actors.layout import Layout, open_gates
from actors.resharding import change_shard_count
from actors.usage_shard import NAMESPACE, shard_actor
from infra import usage_store
from infra.database import create_engine, migrate
from infra.embedded import resolve
from infra.settings import ConfigurationError, Settings
from serve import serve_config
from serve.deployment import api_application

log = logging.getLogger(__name__)

# Ray 2.60's proxy-less ingress: HAProxy in front of the replicas instead of Serve's Python
# proxy (measured here: ~340 req/s through the Python proxy, ~3,460 with these two).
THROUGHPUT_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # That mode buffers 1,000 log records per replica before writing any (or an ERROR): a quiet
    # replica's request logs would never reach the file. Write each line as it comes.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
}


def start_ray(
    settings: Settings, dashboard: bool = True, object_store_mb: int = 256, dashboard_port: int = 8265
) -> None:
    if ray.is_initialized():
        return
    for key, value in THROUGHPUT_ENV.items():
        os.environ.setdefault(key, value)
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(
            namespace=NAMESPACE,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            object_store_memory=object_store_mb * 1024 * 1024,
            log_to_driver=False,
        )


def start_shards(settings: Settings) -> list[ray.actor.ActorHandle]:
    """The shard actors of the recorded layout (BILLING_SHARDS only sets the first one; a change
    is made with `billing shards set N`), started where not running."""
    layout = asyncio.run(_recorded_layout(settings))
    if layout.shards != settings.shards:
        log.warning(
            "BILLING_SHARDS is %s but the usage log %r has %s shards (changed with `billing shards set`); "
            "using %s",
            settings.shards,
            settings.redis_prefix,
            layout.shards,
            layout.shards,
        )
    if layout.changing:
        log.warning(
            "a change to %s shards is unfinished: run `billing shards set %s`", layout.target, layout.target
        )
    handles = [shard_actor(shard, settings) for shard in range(max(layout.shards, layout.target or 0))]
    ray.get([handle.ready.remote() for handle in handles])
    return handles


async def _recorded_layout(settings: Settings) -> Layout:
    engine = create_engine(settings.database_url, pool_size=1)
    redis = Redis.from_url(settings.redis_url)
    try:
        async with engine.begin() as conn:
            layout = await usage_store.ensure_layout(conn, settings.redis_prefix, settings.shards)
        if not layout.changing:
            # Only where missing (a new or emptied Redis): a change may be freezing them right now.
            await open_gates(redis, settings.redis_prefix, layout, only_missing=True)
        return layout
    finally:
        await redis.aclose()
        await engine.dispose()


def deploy_api(settings: Settings, options: dict | None = None) -> None:
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(api_application(settings, options), name="billing", route_prefix="/", blocking=False)


def build(args: dict[str, str]) -> Application:
    """The import path of serve_config.yaml, for `serve deploy` / `serve run` on a cluster: the
    nodes' environment names PostgreSQL and Redis (no embedded servers under Serve); the shard
    actors are started if they are not running. Serve applies the file's deployment options."""
    settings = Settings.from_env()
    if not (settings.database_url and settings.redis_url):
        raise ConfigurationError("serve deploy needs DATABASE_URL and REDIS_URL in the nodes' environment")
    migrate(settings.database_url)
    start_shards(settings)
    return api_application(settings)


@dataclass
class Stack:
    settings: Settings
    shards: list

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def flush(self) -> None:
        """Store everything the shards hold (graceful shutdown, tests)."""
        ray.get([shard.flush.remote() for shard in self.shards])

    def reshard(self, shards: int, report: Callable[[str], None] = log.info) -> Layout:
        """Change the shard count while serving (see actors/resharding.py)."""
        layout = asyncio.run(change_shard_count(self.settings, shards, report))
        self.shards = [shard_actor(shard, self.settings) for shard in range(layout.shards)]
        return layout

    def stop(self) -> None:
        try:
            self.flush()
        finally:
            serve.shutdown()
            for shard in self.shards:
                ray.kill(shard, no_restart=True)


def start_stack(settings: Settings, dashboard: bool = True, dashboard_port: int = 8265) -> Stack:
    """Resolve storage (embedded servers when unset), migrate, start Ray, shards and the API."""
    settings = resolve(settings)
    options = None
    if settings.serve_config is not None:
        config = serve_config.load(settings.serve_config)
        settings, options = settings.with_(http_host=config.host, http_port=config.port), config.deployment
    migrate(settings.database_url)
    start_ray(settings, dashboard=dashboard, dashboard_port=dashboard_port)
    shards = start_shards(settings)
    deploy_api(settings, options)
    return Stack(settings, shards)
