"""The readers-writer lock (shared calls side by side, never beside an exclusive hold), key locks."""

import threading
import time
from collections.abc import Callable

import pytest

from tracker_flavor.concurrency.locks import KeyLocks, ReadersWriterLock, Shared

pytestmark = pytest.mark.unit


def holding(hold: Callable, order: list[str], name: str, release: threading.Event):
    """Start a thread that takes `hold()`, notes `name`, and keeps it until `release`."""

    def run() -> None:
        with hold():
            order.append(name)
            release.wait(5)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def settled(thread: threading.Thread, seconds: float = 0.2) -> bool:
    """Tell whether the thread ended within `seconds` (a short while: it is held up)."""
    thread.join(seconds)
    return not thread.is_alive()


def eventually(condition: Callable[[], bool]) -> bool:
    """Wait up to 5 s for `condition`."""
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_calls_run_side_by_side_and_a_switch_waits_for_them():
    lock, order, release = ReadersWriterLock(), [], threading.Event()
    first = holding(lock.shared, order, "call 1", release)
    second = holding(lock.shared, order, "call 2", release)
    assert eventually(lambda: len(order) == 2)  # both inside at once
    switch = holding(lock.exclusive, order, "switch", release)
    assert not settled(switch) and sorted(order) == ["call 1", "call 2"]  # waits for both
    release.set()
    for thread in (first, second, switch):
        thread.join(5)
    assert order[2] == "switch"


def test_a_waiting_switch_goes_before_new_calls_but_not_before_nested_ones():
    lock, order, release = ReadersWriterLock(), [], threading.Event()
    with lock.shared():
        switch = holding(lock.exclusive, order, "switch", release)
        assert eventually(lambda: lock._waiting == 1)
        with lock.shared():  # nested in this thread's call: no deadlock
            order.append("nested")
        newcomer = holding(lock.shared, order, "new call", release)
        assert not settled(newcomer)
    release.set()
    for thread in (switch, newcomer):
        thread.join(5)
    assert order == ["nested", "switch", "new call"]


def test_the_switch_is_reentrant_and_its_thread_may_call():
    lock, order, at_once = ReadersWriterLock(), [], threading.Event()
    with lock.exclusive(), lock.exclusive(), lock.shared():
        pass
    at_once.set()
    assert settled(holding(lock.shared, order, "call", at_once), 5)  # released entirely
    assert settled(holding(lock.exclusive, order, "switch", at_once), 5)


def test_key_locks_exclude_each_other_and_are_forgotten_when_free():
    locks, entered = KeyLocks(), []

    def enter() -> None:
        with locks.hold("k"):
            entered.append(1)

    with locks.hold("k"):
        thread = threading.Thread(target=enter)
        thread.start()
        thread.join(0.1)
        assert entered == []  # waits for the holder
    thread.join()
    assert entered == [1] and len(locks) == 0


def test_a_lock_map_does_not_grow_with_the_runs_of_a_long_lived_process():
    locks = KeyLocks()
    for run in range(100):
        with locks.hold(("uri", str(run))):
            pass
    assert len(locks) == 0


def test_shared_state_goes_in_with_the_first_user_and_out_with_the_last():
    events: list[str] = []
    shared = Shared(lambda: events.append("in"), lambda: events.append("out"))
    shared.enter()
    shared.enter()
    shared.leave()
    assert events == ["in"]
    shared.leave()
    shared.leave()  # an extra leave is harmless
    assert events == ["in", "out"]
    shared.enter()
    shared.reset()
    shared.reset()
    assert events == ["in", "out", "in", "out"]
