"""Ports for the servers the tests start (and the benches that start the service).

Chosen below the kernel's ephemeral range and above Ray's default worker ports (10002-19999):
a port handed out by `bind(("", 0))` comes from the ephemeral range, and between choosing it and
the server binding it an outgoing connection (Ray opens hundreds) could take it; HAProxy then
failed to start (`cannot bind socket (Address already in use)`) in a full run. The ports of one
call are held together while chosen, so they differ.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000


def _highest() -> int:
    """The port below the ephemeral range (Linux's default range starts at 32768)."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    return max(first - 1, LOWEST + 1000)


def free_ports(count: int) -> list[int]:
    """`count` different ports nobody listens on right now, on any address."""
    highest = _highest()
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket()
            try:
                sock.bind(("0.0.0.0", random.randint(LOWEST, highest)))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]
