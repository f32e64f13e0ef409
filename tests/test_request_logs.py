"""The API replicas log one JSON object per line, and a request's lines carry its request id,
the one the response returns in X-Request-ID."""

from __future__ import annotations

import json
import time
from pathlib import Path

import ray

from tests.conftest import auth


def test_a_request_can_be_found_in_the_json_logs_by_its_id(api, tokens, stack):
    response = api.get("/api/v1/tenants/no-such-tenant", headers=auth(tokens["viewer"]))
    request_id = response.headers["x-request-id"]
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    deadline = time.monotonic() + 20
    while True:
        lines = [
            json.loads(line)
            for path in logs.glob("replica_*BillingAPI*")
            for line in path.read_text(errors="replace").splitlines()
            if request_id in line
        ]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert lines, f"no log line of request {request_id}"
    assert all(line["request_id"] == request_id for line in lines)
    assert any("404" in json.dumps(line) for line in lines)
