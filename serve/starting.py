"""What the API port answers while the service starts: 503 problem+json with Retry-After, on every
path, from the moment `billing up` begins until the API is deployed (issue 13). A client that
retries on 5xx (the kernel) then keeps its batches instead of dropping them on a 404.

Serve's HAProxy starts listening as soon as Serve starts, and answers 404 "Path not found" for
every path until an application holds it (seconds later, after its replicas start). So this
process binds the port first, with SO_REUSEPORT, and attaches a classic BPF program to the port's
socket group that hands every new connection to the group's first socket: its own. HAProxy (told
to use SO_REUSEPORT too, SERVE_SOCKET_REUSE_PORT_ENABLED=1) joins the group but gets no connection
while this socket is open; when the API is deployed this socket closes, and HAProxy's becomes the
first. Linux only; elsewhere the port simply opens when HAProxy does.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson

RETRY_AFTER_S = 2
DRAIN_S = 0.3
PROBLEM_TYPE = "https://billing.enis.dev/problems/starting"
SO_ATTACH_REUSEPORT_CBPF = 51  # linux/asm-generic/socket.h


class PortInUse(RuntimeError):
    """Something already listens on the API port (another stack, or a leftover HAProxy)."""


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _steer(sock: socket.socket, index: int) -> bool:
    """Attach `ret #index` to the socket's reuseport group: every new connection goes to the
    group's socket `index` (by the order they joined; out of range, the kernel's hash picks)."""
    program = (_SockFilter * 1)(_SockFilter(0x06, 0, 0, index))  # BPF_RET | BPF_K
    fprog = _SockFprog(1, ctypes.cast(program, ctypes.POINTER(_SockFilter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(fprog))
    except OSError:
        return False
    return True


def _problem() -> bytes:
    return orjson.dumps(
        {
            "type": PROBLEM_TYPE,
            "title": "Service starting",
            "status": 503,
            "detail": "the API is not deployed yet; retry after the time in Retry-After",
        }
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 64 * 1024 * 1024:
            self.rfile.read(length)  # read the body so the client sees the answer, not a reset
        body = _problem()
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Retry-After", str(RETRY_AFTER_S))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # the next request opens a new connection: HAProxy's, later
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StartingResponder:
    """Answers 503 on (host, port) until `close()`; `steering` says whether HAProxy is kept off
    the port meanwhile (Linux). Raises PortInUse when the port is taken."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.steering = False
        self._server: ThreadingHTTPServer | None = None

    def open(self) -> Self:
        _check_free(self.host, self.port)
        if not sys.platform.startswith("linux"):
            return self
        server = ThreadingHTTPServer((self.host, self.port), _Handler, bind_and_activate=False)
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        server.server_bind()
        self.steering = _steer(server.socket, 0)
        if not self.steering:  # without steering HAProxy would get half the connections: 404s
            server.server_close()
            return self
        server.server_activate()
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._server = server
        return self

    def close(self) -> None:
        if self._server is not None:
            # New connections to the next socket (HAProxy's) first, then answer the ones already
            # queued here: closing a listener resets the connections still in its queue.
            _steer(self._server.socket, 1)
            time.sleep(DRAIN_S)
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_free(host: str, port: int) -> None:
    """A plain bind (no SO_REUSEPORT) fails where anything listens, a reuseport listener too."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"{host}:{port} is in use: another `billing up`, or a HAProxy left by one "
                    f"(`ss -ltnp 'sport = :{port}'` shows which process)"
                ) from error
            raise
