"""The shipped Serve config file is valid for Serve and is what `billing up` deploys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from infra.settings import ConfigurationError, Settings
from serve import serve_config
from serve.deployment import api_application
from serve.serve_config import SHIPPED


def test_the_shipped_file_passes_serves_schema_and_names_a_real_builder():
    schema = ServeDeploySchema.model_validate(yaml.safe_load(SHIPPED.read_text()))
    [application] = schema.applications
    module, _, name = application.import_path.partition(":")
    assert callable(getattr(__import__(module, fromlist=[name]), name))


def test_billing_up_takes_the_deployment_from_the_file():
    config = serve_config.load(SHIPPED)
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    assert config.deployment["max_ongoing_requests"] == 256
    assert config.deployment["autoscaling_config"]["min_replicas"] == 2
    deployment = api_application(Settings(), config.deployment)._bound_deployment
    assert deployment.max_ongoing_requests == 256
    assert deployment._deployment_config.autoscaling_config.max_replicas == 8


def test_a_file_serve_refuses_is_refused_naming_it(tmp_path: Path):
    broken = tmp_path / "serve.yaml"
    broken.write_text("applications:\n  - name: billing\n    import_path: 42\n    route_prefix: nope\n")
    with pytest.raises(ConfigurationError, match="serve.yaml"):
        serve_config.load(broken)
