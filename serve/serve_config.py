"""The Serve config file (serve_config.yaml): one description of the API deployment for `serve
deploy` and `billing up`. Validated with Serve's own schema, so what `billing up` accepts is what
`serve deploy` accepts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray.serve.schema import ServeDeploySchema

from infra.settings import ConfigurationError

APPLICATION = "billing"
DEPLOYMENT = "BillingAPI"
SHIPPED = Path(__file__).resolve().parents[1] / "serve_config.yaml"


@dataclass(frozen=True)
class ServeConfig:
    host: str
    port: int
    deployment: dict[str, Any]  # BillingAPI's options: replicas or autoscaling, max_ongoing_requests


def load(path: Path) -> ServeConfig:
    """The file's HTTP options and the BillingAPI deployment's options. Raises
    ConfigurationError naming the file when Serve's schema refuses it."""
    try:
        schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise ConfigurationError(f"{path}: not a valid Serve config: {error}") from None
    application = next((app for app in schema.applications if app.name == APPLICATION), None)
    if application is None:
        raise ConfigurationError(f"{path}: no application named {APPLICATION!r}")
    options = next((d for d in application.deployments or [] if d.name == DEPLOYMENT), None)
    deployment = {} if options is None else options.model_dump(exclude_unset=True, exclude={"name"})
    http = schema.http_options
    return ServeConfig(http.host, http.port, deployment)
