"""Process state is bounded, forgets idle locks, and resets for tests."""

import threading

import pytest

from tracker_flavor.runtime import BoundedCache, KeyLocks, Runtime

pytestmark = pytest.mark.unit


def test_caches_forget_the_least_recently_used_entries():
    cache: BoundedCache[str, int] = BoundedCache(size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)


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


def test_reset_forgets_everything_and_nothing_waits_for_exit_before_a_watch():
    state = Runtime()
    assert not state.finalizer._at_exit
    state.experiments.put(("u", "e"), "1")
    assert state.first("u", "http") and not state.first("u", "http")
    state.reset()
    assert state.experiments.get(("u", "e")) is None and state.first("u", "http")
