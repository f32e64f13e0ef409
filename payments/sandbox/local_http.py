"""A tiny HTTP server on 127.0.0.1 in a daemon thread, for local stand-ins of payment providers.

Plain stdlib (`http.server`), no pytest: the demo starts the same servers. A subclass answers
`handle(request)`; requests are handled one at a time under a lock, so a provider's state (and its
idempotency cache) needs no further locking. `fail_next(n)` makes the next n requests answer 503,
as a provider outage does, without touching the state. `hold_next(path)` keeps the answer to the
next request for that path after the provider has acted on it, until released: the caller can be
killed while the money has moved but before it learns so (`acted=False`: the request is kept
before the provider sees it, then dropped unanswered, as one lost on the way).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status, json.dumps(document).encode(), {"Content-Type": "application/json", **(headers or {})}
        )


@dataclass(slots=True)
class Hold:
    """An answer kept back: `reached` is set once the request is held; `release()` sends its
    answer (to a caller that may be gone), or with `acted=False` drops the request unanswered."""

    path: str
    acted: bool = True
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def wait_reached(self, timeout_s: float) -> None:
        if not self.reached.wait(timeout_s):
            raise TimeoutError(f"no request to {self.path} within {timeout_s} s")

    def release(self) -> None:
        self.released.set()


HOLD_LIMIT_S = 60.0  # a hold nobody releases lets go by itself, so a failed test never hangs a thread


class LocalHTTPServer:
    """Subclass and implement `handle`; `start()` binds `port` (0, the default: a free one), `url`
    is its base URL."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._failures: list[int] = []
        self._holds: list[Hold] = []
        self.requests_seen: list[Request] = []

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                owner._dispatch(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        # A short poll interval: stop() waits up to one interval for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """Answer the next `count` requests with `status` before looking at them."""
        with self._lock:
            self._failures.extend([status] * count)

    def hold_next(self, path: str, acted: bool = True) -> Hold:
        """Keep back the answer to the next request whose path starts with `path`."""
        hold = Hold(path, acted)
        with self._lock:
            self._holds.append(hold)
        return hold

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def unavailable(self, status: int) -> Response:
        return Response.json(status, {"error": "service unavailable"})

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query)),
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests_seen.append(request)
            hold = next((h for h in self._holds if request.path.startswith(h.path)), None)
            if hold is not None:
                self._holds.remove(hold)
            response = None
            if hold is None or hold.acted:
                response = self.unavailable(self._failures.pop(0)) if self._failures else self.handle(request)
        if hold is not None:  # outside the lock: the provider keeps answering everyone else
            hold.reached.set()
            hold.released.wait(HOLD_LIMIT_S)
        if response is None:
            return  # lost on the way: never acted on, the connection closes unanswered
        try:
            self._send(handler, response)
        except OSError:
            if hold is None:
                raise
            # the caller died while its answer was held

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, response: Response) -> None:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        handler.wfile.write(response.body)


def post_webhook(url: str, payload: bytes, headers: dict[str, str]) -> int:
    """POST a signed webhook to an endpoint (the demo's API); returns the HTTP status."""
    request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:  # a 4xx/5xx answer is still an answer
        return int(error.code)
