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


def test_put_new_tells_the_first_put_and_pop_forgets():
    cache: BoundedCache[str, int] = BoundedCache(size=2)
    assert cache.put_new("a", 1) and not cache.put_new("a", 2)
    assert cache.get("a") == 1
    assert cache.pop("a") == 1 and cache.pop("a") is None and len(cache) == 0


def test_deliveries_register_the_exit_wait_with_the_first_delivery_and_a_reset_drops_it():
    import atexit

    state = Runtime()
    registered = atexit._ncallbacks()
    assert state.deliveries.wait(timeout=0)  # nothing registered at start, nothing to wait for
    assert atexit._ncallbacks() == registered
    released, started = threading.Event(), threading.Event()

    def deliver() -> None:
        with state.deliveries.counted():
            started.set()
            released.wait()

    thread = threading.Thread(target=deliver)
    thread.start()
    started.wait()
    assert atexit._ncallbacks() == registered + 1
    assert not state.deliveries.wait(timeout=0.05)  # the exit waits for it
    released.set()
    thread.join()
    with state.deliveries.counted():  # registered once
        pass
    assert state.deliveries.wait(timeout=0) and atexit._ncallbacks() == registered + 1
    deliveries = state.deliveries
    state.reset()
    assert not deliveries._at_exit  # unregistered


def test_system_metrics_samplers_are_runtime_state(sqlite_uri):
    import uuid

    from mlflow import MlflowClient

    from tracker_flavor import system_metrics
    from tracker_flavor.runtime import runtime

    client = MlflowClient(sqlite_uri)
    run_id = client.create_run("0").info.run_id
    step = uuid.uuid4()
    system_metrics.start(step, run_id, sqlite_uri, interval=60, node="step")
    assert runtime.monitors.get(step) is not None
    system_metrics.stop(step)  # one last sample, then forgotten
    assert runtime.monitors.get(step) is None
    assert any(key.startswith("system/step/") for key in client.get_run(run_id).data.metrics)
    system_metrics.stop(step)  # no sampler: nothing to do
