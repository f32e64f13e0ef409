"""The whole service wired in one place: Ray, the shard actors, and the API on Serve."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve import Application

from actors.usage_shard import NAMESPACE, UsageShard, actor_name
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
    asyncio.run(_check_shard_count(settings))
    handles = [
        UsageShard.options(
            name=actor_name(settings.redis_prefix, shard),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
        ).remote(shard, settings)
        for shard in range(settings.shards)
    ]
    ray.get([handle.ready.remote() for handle in handles])
    return handles


async def _check_shard_count(settings: Settings) -> None:
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await usage_store.check_shard_count(conn, settings.redis_prefix, settings.shards)
    finally:
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
