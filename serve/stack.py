"""The whole service wired in one place: Ray, the shard actors, and the API on Serve."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.serve import Application

from actors import usage_store
from actors.layout import Layout, open_gates
from actors.resharding import change_shard_count
from actors.usage_shard import NAMESPACE, shard_actor
from infra import redis_client
from infra.database import create_engine, migrate
from infra.embedded import resolve
from infra.settings import ConfigurationError, Settings
from serve import serve_config
from serve.deployment import api_application
from serve.starting import StartingResponder

log = logging.getLogger(__name__)

# Ray 2.60's proxy-less ingress: HAProxy in front of the replicas instead of Serve's Python
# proxy (measured here: ~340 req/s through the Python proxy, ~3,460 with these two).
THROUGHPUT_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # That mode buffers 1,000 log records per replica before writing any (or an ERROR): a quiet
    # replica's request logs would never reach the file. Write each line as it comes.
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
    # A stopping replica stays reachable this long "so load balancers can deregister it" (30 s by
    # default). The balancer here is Serve's own HAProxy, reconfigured as the replica goes, so the
    # wait only made every stop take 30 s ("Controller failed to shut down within 30.0s").
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    # HAProxy binds the API port with SO_REUSEPORT (as Serve's Python proxy does by default), so it
    # can join the socket serve/starting.py holds on the port until the API is deployed.
    "SERVE_SOCKET_REUSE_PORT_ENABLED": "1",
}


def start_ray(
    settings: Settings, dashboard: bool = True, object_store_mb: int = 256, dashboard_port: int = 8265
) -> None:
    if ray.is_initialized():
        return
    for key, value in THROUGHPUT_ENV.items():
        os.environ.setdefault(key, value)
    if not settings.ray_address:
        # Requests HAProxy cannot hand straight to a replica go to Serve's Python proxy on
        # 127.0.0.1:8500, bound with SO_REUSEPORT: a second local Ray on this machine (another
        # `billing up`, a test session) would share that port, and the kernel would give it half
        # of this API's requests, answered by its app (401s with its keys, usage in its database).
        # Always a fresh port: an inherited value is the parent's Ray's.
        os.environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(_unused_port())
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


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_shards(settings: Settings) -> list[ray.actor.ActorHandle[Any]]:
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
    engine = create_engine(settings.resolved_database_url(), pool_size=1)
    redis = redis_client.connect(settings.redis_connection())
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


def deploy_api(settings: Settings, options: dict[str, Any] | None = None) -> None:
    serve.start(
        http_options={"host": settings.http_host, "port": settings.http_port},
        # Several Ray nodes on one machine: only the head's proxy can have the port. None: Serve's
        # default.
        proxy_location=settings.serve_proxy_location or None,
    )
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
    shards: list[ray.actor.ActorHandle[Any]]

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
            shutdown_serve()
            for shard in self.shards:
                ray.kill(shard, no_restart=True)


def shutdown_serve(timeout_s: float = 15) -> None:
    """serve.shutdown() without its two noises: Serve's controller ends its graceful shutdown by
    killing itself, and the call waiting on it, retried without limit, makes the raylet print
    "(raylet) Task ServeController.graceful_shutdown failed ... killed by ray.kill". Asked once
    (max_task_retries=0), the same end is an expected RayActorError. The graceful shutdown also
    stops HAProxy; the proxy actor is not killed under it."""
    from ray.exceptions import GetTimeoutError, RayActorError
    from ray.serve import context
    from ray.serve.exceptions import RayServeException

    try:
        client = context._get_global_client()
    except RayServeException:
        return  # Serve is not running
    if client is None:  # what the call is typed to allow, though it raises rather than answer so
        return
    try:
        client.shutdown_cached_handles()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated
        done = client._controller.graceful_shutdown.options(max_task_retries=0).remote()
        ray.get(done, timeout=timeout_s)
    except RayActorError:
        pass  # the controller exited: shutdown complete
    except GetTimeoutError:
        log.warning("Serve did not shut down within %s s; Ray's shutdown ends it", timeout_s)
    except AttributeError:  # Serve's internals changed: the public call, noise and all
        serve.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated
        return
    client._shutdown = True
    context._disconnect()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated


def start_stack(settings: Settings, dashboard: bool = True, dashboard_port: int = 8265) -> Stack:
    """Resolve storage (embedded servers when unset), migrate, start Ray, shards and the API. With
    a local Ray, the API port answers 503 problem+json from the start until the API is deployed
    (serve/starting.py); PortInUse when something else holds it."""
    options = None
    if settings.serve_config is not None:
        config = serve_config.load(settings.serve_config)
        settings, options = settings.with_(http_host=config.host, http_port=config.port), config.deployment
    local = settings.ray_address is None and not ray.is_initialized()
    with StartingResponder(settings.http_host, settings.http_port) if local else nullcontext():
        settings = resolve(settings)
        migrate(settings.resolved_database_url())
        start_ray(settings, dashboard=dashboard, dashboard_port=dashboard_port)
        shards = start_shards(settings)
        deploy_api(settings, options)
    return Stack(settings, shards)
