"""The Ray Serve deployment around the FastAPI app."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from infra.settings import Settings
from serve.app import build_app


def api_application(settings: Settings, options: dict[str, Any] | None = None) -> Application:
    """The API application; `options` (a Serve config file's BillingAPI entry) override the
    settings' replicas and max_ongoing_requests."""
    app = build_app(settings)
    # max_ongoing_requests is set on purpose: Serve's default of 5 queues a burst of kernel posts
    # behind each other although each spends most of its time waiting on Redis.
    chosen: dict[str, Any] = {
        "num_replicas": settings.ingress_replicas,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": 0},
        # One JSON object per line, each request's with its request_id (also the response's
        # X-Request-ID header), so logs can be searched by request.
        "logging_config": {"encoding": "JSON"},
        **(options or {}),
    }
    if "autoscaling_config" in (options or {}):
        chosen.pop("num_replicas")  # an autoscaled deployment has no fixed count

    class BillingAPI:
        pass

    # The decorators as calls: mypy keeps a decorated class's own type, which has no `bind`.
    deployment = serve.deployment(name="BillingAPI", **chosen)(serve.ingress(app)(BillingAPI))
    return deployment.bind()
