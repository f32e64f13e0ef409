"""A client that posts usage the way the kernel does: at least once.

A batch is sent again, with the same event ids, until the API answers 202: on a 503 after the
Retry-After it names (capped, so tests do not idle), on a lost connection or a timeout at once
after a short pause. Whether an earlier attempt reached Redis or not, the resend is then counted
once: that is the contract a fault must not break. Every answer is recorded, so a test can say
what the API said while a dependency was down.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import orjson

RESEND_PAUSE_S = 0.1  # after a lost connection or a timeout


@dataclass(frozen=True)
class Attempt:
    sent: float  # time.monotonic()
    answered: float
    outcome: int | str  # the status code, or the transport error's name
    retry_after: str | None = None


@dataclass
class Delivery:
    """One batch, from its first attempt to its 202."""

    index: int
    attempts: list[Attempt] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0

    @property
    def accepted_at(self) -> float:
        return self.attempts[-1].answered


class UnexpectedAnswer(AssertionError):
    """The API answered something the kernel cannot retry its way out of (a 4xx)."""


class Cancelled(Exception):
    """The test stopped the sending (it failed, or is tearing down)."""


class KernelClient:
    def __init__(
        self,
        url: str,
        token: str,
        retry_after_cap_s: float = 0.5,
        timeout_s: float = 30,
        verify: ssl.SSLContext | bool = True,  # an https URL's trust and client certificate
    ) -> None:
        self.url = url
        self.verify = verify
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self.retry_after_cap_s = retry_after_cap_s
        self.timeout_s = timeout_s

    def deliver(
        self, client: httpx.Client, index: int, body: bytes, cancelled: threading.Event | None = None
    ) -> Delivery:
        """Send one batch until it is accepted."""
        delivery = Delivery(index)
        while not (cancelled and cancelled.is_set()):
            sent = time.monotonic()
            try:
                response = client.post("/api/v1/usage", content=body)
            except httpx.TransportError as error:
                delivery.attempts.append(Attempt(sent, time.monotonic(), type(error).__name__))
                time.sleep(RESEND_PAUSE_S)
                continue
            retry_after = response.headers.get("retry-after")
            delivery.attempts.append(Attempt(sent, time.monotonic(), response.status_code, retry_after))
            if response.status_code == 202:
                answer = orjson.loads(response.content)
                delivery.accepted, delivery.duplicates = answer["accepted"], answer["duplicates"]
                return delivery
            if response.status_code < 500:
                raise UnexpectedAnswer(f"batch {index}: {response.status_code} {response.text[:500]}")
            # A 503 (or a 500, which the test then fails on): the kernel keeps the batch and resends.
            time.sleep(min(float(retry_after or 1), self.retry_after_cap_s))
        raise Cancelled(f"batch {index} was not delivered")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout_s, verify=self.verify)

    def start(self, bodies: Sequence[bytes], senders: int) -> Sending:
        return Sending(self, bodies, senders)


class Sending:
    """Batches in flight from `senders` threads, in order of index; watch it, then wait()."""

    def __init__(self, kernel: KernelClient, bodies: Sequence[bytes], senders: int) -> None:
        self.kernel = kernel
        self.bodies = bodies
        self.deliveries: list[Delivery] = []
        self.failures: list[BaseException] = []
        self.cancelled = threading.Event()
        self._next = iter(range(len(bodies)))
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(senders)]
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        with self.kernel.client() as client:
            while not (self.failures or self.cancelled.is_set()):
                with self._lock:
                    index = next(self._next, None)
                if index is None:
                    return
                try:
                    delivery = self.kernel.deliver(client, index, self.bodies[index], self.cancelled)
                except Cancelled:
                    return
                except Exception as error:  # noqa: BLE001 - surfaced by wait()
                    self.failures.append(error)
                    return
                with self._lock:
                    self.deliveries.append(delivery)

    @property
    def delivered(self) -> int:
        """Batches accepted so far; raises what stopped the senders (a 4xx, say) as soon as it
        happened, so a test watching the count fails with the API's answer instead of waiting."""
        if self.failures:
            raise self.failures[0]
        return len(self.deliveries)

    @property
    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def accepted_since(self, moment: float) -> bool:
        """Whether a batch sent after `moment` was accepted: the API takes usage again."""
        with self._lock:
            return any(d.attempts[-1].sent >= moment for d in self.deliveries[-50:])

    def cancel(self) -> None:
        self.cancelled.set()
        for thread in self._threads:
            thread.join()

    def wait(self, timeout_s: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.failures:
            raise self.failures[0]
        assert self.done, f"sending did not finish in {timeout_s} s ({self.delivered} batches delivered)"
        return sorted(self.deliveries, key=lambda d: d.index)


def outcomes(deliveries: Sequence[Delivery]) -> Counter:
    """How often the API answered each status (or each transport error occurred)."""
    return Counter(attempt.outcome for d in deliveries for attempt in d.attempts)
