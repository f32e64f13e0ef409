"""The cyclic garbage collector paused during a burst of work that makes many objects (a PDF, an
invoice run's batch), and the young generation collected after it.

Why: CPython runs a young-generation pass every 700 container objects made, and, as survivors
pile up, passes over the older generations that walk every long-lived object of the process
(a Ray worker's imports, caches and engine). A page of a PDF makes some 12,000 containers, three
quarters of them in reference cycles (boxes and styles point at their parents): the passes were
14% of a PDF's CPU. A batch of 100 invoices makes hundreds of thousands (an hour of usage each,
its quantities, the rows they were read from), nearly all freed by their reference counts: the
passes were a third of a batch's CPU (5,000 tenants with a day of usage each, invoiced in one
process: 1.9-2.3 ms of CPU per invoice with them, 1.2-1.5 without). With the collector paused, what a burst leaves in cycles waits in the
young generation, and one pass over it after the burst frees it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_bursts = 0  # bursts under way in this process's threads
_was_enabled = False


@contextmanager
def collected_after() -> Iterator[None]:
    """Run the block with the collector paused, then collect the young generation. Threads share
    the collector: the first burst in pauses it, the last one out restores it."""
    global _bursts, _was_enabled
    with _lock:
        if _bursts == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _bursts += 1
    try:
        yield
    finally:
        with _lock:
            _bursts -= 1
            if _bursts == 0 and _was_enabled:
                gc.enable()
        gc.collect(0)
