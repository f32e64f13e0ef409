"""Every shipped Ray cluster-launcher file is valid for the installed Ray: checked against the
schema Ray itself validates `ray up` configs with (ray/autoscaler/ray-schema.json)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_FILES = sorted(ROOT.glob("cluster*.yaml"))
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def test_both_variants_are_shipped():
    assert {path.name for path in CLUSTER_FILES} == {"cluster.yaml", "cluster-aws.yaml"}


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda path: path.name)
def test_a_cluster_file_is_valid_against_rays_schema(path: Path):
    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, SCHEMA)
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    for setting in (
        "RAY_AUTH_MODE=token",
        "--metrics-export-port=8080",
        "RAY_SERVE_ENABLE_HA_PROXY=1",
        "--object-store-memory=",
    ):
        assert setting in starts, setting


def test_a_broken_file_is_refused():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["provider"]["type"] = 42
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, SCHEMA)
