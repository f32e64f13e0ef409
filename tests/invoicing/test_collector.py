import gc
import threading
import weakref

from invoicing.collector import collected_after


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_the_collector_waits_during_a_burst_and_frees_its_cycles_after() -> None:
    assert gc.isenabled()
    with collected_after():
        assert not gc.isenabled()
        node = weakref.ref(_Node())
        assert node() is not None
    assert gc.isenabled()
    assert node() is None


def test_the_collector_is_back_only_when_the_last_of_overlapping_bursts_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    def burst() -> None:
        with collected_after():
            inside.set()
            release.wait(10)

    other = threading.Thread(target=burst)
    other.start()
    inside.wait(10)
    with collected_after():
        pass
    assert not gc.isenabled()  # the other thread's burst is still under way
    release.set()
    other.join(10)
    assert gc.isenabled()
