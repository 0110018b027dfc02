"""Process state is bounded, forgets idle locks, and resets for tests."""

import atexit
import threading

import pytest

from tracker_flavor.runtime import Runtime

pytestmark = pytest.mark.unit


def test_reset_forgets_everything_and_nothing_waits_for_exit_before_an_install(monkeypatch):
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    state = Runtime()
    assert registered == []
    state.runs.experiments.put(("u", "e"), "1")
    assert state.once.first("u", "http") and not state.once.first("u", "http")
    state.reset()
    assert state.runs.experiments.get(("u", "e")) is None and state.once.first("u", "http")


def test_the_exit_hook_and_store_lookup_are_put_in_once_by_install_and_out_by_a_reset(monkeypatch):
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", registered.remove)
    from mlflow.tracking._tracking_service import utils

    get_store = utils._get_store
    state = Runtime()
    state.install()
    state.install()
    assert registered == [state.at_exit]
    assert utils._get_store is not get_store  # the late values' store lookup, for good
    state.reset()
    assert registered == [] and utils._get_store is get_store


def test_the_exit_waits_for_the_delivery_in_flight():
    state = Runtime()
    assert state.deliveries.wait(timeout=0)  # nothing to wait for
    released, started = threading.Event(), threading.Event()

    def deliver() -> None:
        with state.deliveries.counted():
            started.set()
            released.wait()

    thread = threading.Thread(target=deliver, daemon=True)
    exiting = threading.Thread(target=state.at_exit, daemon=True)
    thread.start()
    try:
        assert started.wait(5)
        assert not state.deliveries.wait(timeout=0.05)  # the exit waits for it
        exiting.start()
        exiting.join(0.05)
        assert exiting.is_alive()
    finally:
        released.set()
    thread.join()
    exiting.join(5)
    assert not exiting.is_alive()
    with state.deliveries.counted():
        pass
    assert state.deliveries.wait(timeout=0)


def test_system_metrics_samplers_are_runtime_state(sqlite_uri):
    import uuid

    from mlflow import MlflowClient

    from tracker_flavor.runtime import runtime

    client = MlflowClient(sqlite_uri)
    run_id = client.create_run("0").info.run_id
    step = uuid.uuid4()
    samplers = runtime.mlflow.system_metrics
    before = len(samplers)
    samplers.start(step, run_id, sqlite_uri, interval=60, node="step")
    assert len(samplers) == before + 1
    samplers.stop(step)  # one last sample, then forgotten
    assert len(samplers) == before
    assert any(key.startswith("system/step/") for key in client.get_run(run_id).data.metrics)
    samplers.stop(step)  # no sampler: nothing to do


def test_importing_the_package_changes_nothing_in_the_process(import_side_effects):
    assert import_side_effects.after == import_side_effects.before
