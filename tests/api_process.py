"""The API in a process of its own (plain uvicorn, as a second replica or bench/ingest.py runs
it), for tests that kill it mid-request, start it again, or give it settings of their own."""

from __future__ import annotations

import http.client
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (
    "import pickle, sys, uvicorn; from serve.app import build_app; "
    "uvicorn.run(build_app(pickle.loads(open(sys.argv[1], 'rb').read())), "
    "host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)


class ApiProcess:
    """Started with `settings` and up (answering /healthz) when the constructor returns."""

    def __init__(self, settings, tmp_path: Path) -> None:
        pickled = tmp_path / f"settings-{uuid.uuid4().hex[:6]}.pickle"
        pickled.write_bytes(pickle.dumps(settings))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(pickled), self.url.rsplit(":", 1)[1]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_until_up()
        except BaseException:
            self.kill()
            raise

    def _wait_until_up(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, "the API process exited"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API process did not come up"
            time.sleep(0.3)

    def post_in_background(self, path: str, **request: Any) -> threading.Thread:
        """POST and never mind the answer: the process is killed before it gives one."""
        return in_background(httpx.post, f"{self.url}{path}", timeout=60, **request)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def in_background(call: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
    """`call` in a thread, its connection expected to die with the process it talks to."""

    def run() -> None:
        try:
            call(*args, **kwargs)
        except (OSError, http.client.HTTPException, httpx.TransportError):
            pass

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def start_api(settings: Any, log: Path, timeout_s: float = 90) -> subprocess.Popen[bytes]:
    """The app on `settings.http_port`, its output in `log`; answering /healthz when returned."""
    code = (
        "import pickle, sys, uvicorn; from serve.app import build_app; "
        "settings = pickle.loads(bytes.fromhex(sys.argv[1])); "
        "uvicorn.run(build_app(settings), host='127.0.0.1', port=settings.http_port, "
        "log_level='warning', access_log=False)"
    )
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code, pickle.dumps(settings).hex()], cwd=ROOT, stdout=out, stderr=out
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the API did not start:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{settings.http_port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise AssertionError(f"the API did not answer within {timeout_s:.0f} s")
