"""The watcher settles each watched run once ZenML reports it finished, and never raises."""

import atexit
import concurrent.futures.thread
import threading
import time
import uuid

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor.finalizer import SETTLE_THREADS, RunFinalizer

pytestmark = pytest.mark.unit


class Zenml:
    """ZenML's answers as the test sets them; counts the reads."""

    def __init__(self) -> None:
        self.statuses: dict[uuid.UUID, ExecutionStatus] = {}
        self.reads: list[tuple[list[uuid.UUID], list[uuid.UUID]]] = []
        self.error: Exception | None = None

    def __call__(self, run_ids, step_ids):
        self.reads.append((list(run_ids), list(step_ids)))
        if self.error is not None:
            raise self.error
        return {i: self.statuses[i] for i in [*run_ids, *step_ids] if i in self.statuses}


@pytest.fixture
def zenml() -> Zenml:
    return Zenml()


@pytest.fixture
def finalizer(zenml: Zenml):
    watcher = RunFinalizer(zenml)
    yield watcher
    watcher.stop()


def watched(finalizer: RunFinalizer, zenml: Zenml, status=ExecutionStatus.RUNNING, kind="run"):
    """Watch a new run in `status`; return its id and the statuses it was settled with."""
    run_id, settled = uuid.uuid4(), []
    zenml.statuses[run_id] = status
    finalizer.watch(run_id, settled.append, kind)
    return run_id, settled


def test_a_run_is_settled_once_when_zenml_reports_it_finished(finalizer, zenml):
    run_id, settled = watched(finalizer, zenml)
    finalizer.check()
    assert settled == []  # still running
    zenml.statuses[run_id] = ExecutionStatus.FAILED
    finalizer.check()
    finalizer.check()
    assert settled == [ExecutionStatus.FAILED]


def test_runs_and_steps_are_asked_for_together(finalizer, zenml):
    run_id, _ = watched(finalizer, zenml)
    step_id, _ = watched(finalizer, zenml, kind="step")
    finalizer.check()
    assert ([run_id], [step_id]) in zenml.reads


def test_a_run_zenml_no_longer_knows_is_dropped_unsettled(finalizer, zenml):
    run_id, settled = watched(finalizer, zenml)
    del zenml.statuses[run_id]  # the run was deleted
    finalizer.check()
    zenml.statuses[run_id] = ExecutionStatus.COMPLETED
    finalizer.check()
    assert settled == []


def test_a_failed_read_keeps_the_runs_watched(finalizer, zenml, caplog):
    run_id, settled = watched(finalizer, zenml, ExecutionStatus.COMPLETED)
    zenml.error = ConnectionError("https://user:hunter2@zenml.example down")
    finalizer.check()
    assert settled == []
    assert "hunter2" not in caplog.text
    zenml.error = None
    finalizer.check()
    assert settled == [ExecutionStatus.COMPLETED]


def test_a_failing_settle_neither_raises_nor_stops_the_others(finalizer, zenml):
    def explode(status: ExecutionStatus) -> None:
        raise RuntimeError("MLflow is down")

    failing = uuid.uuid4()
    zenml.statuses[failing] = ExecutionStatus.COMPLETED
    finalizer.watch(failing, explode)
    _, settled = watched(finalizer, zenml, ExecutionStatus.COMPLETED)
    finalizer.check()
    assert settled == [ExecutionStatus.COMPLETED]


def test_the_watcher_thread_settles_without_being_asked(finalizer, zenml):
    _, settled = watched(finalizer, zenml, ExecutionStatus.COMPLETED)
    deadline = time.monotonic() + 5
    while not settled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert settled == [ExecutionStatus.COMPLETED]


def test_the_exit_check_is_registered_once_and_removed_by_a_reset(finalizer, zenml, monkeypatch):
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", registered.remove)
    watched(finalizer, zenml)
    watched(finalizer, zenml)
    assert registered == [finalizer.check]
    finalizer.stop()
    assert registered == []


def test_finished_steps_are_settled_side_by_side_and_their_run_after_them(finalizer, zenml):
    """A wide map's outputs, sent one step at a time, lagged a minute behind its run."""
    together = threading.Barrier(SETTLE_THREADS, timeout=5)
    order: list[str] = []

    def step(status: ExecutionStatus) -> None:
        together.wait()  # breaks unless SETTLE_THREADS steps are settled at once
        order.append("step")

    run_id, _ = watched(finalizer, zenml, ExecutionStatus.COMPLETED)
    finalizer.watch(run_id, lambda status: order.append("run"))
    for _ in range(SETTLE_THREADS):
        step_id = uuid.uuid4()
        zenml.statuses[step_id] = ExecutionStatus.COMPLETED
        finalizer.watch(step_id, step, "step")
    finalizer.check()
    assert order == ["step"] * SETTLE_THREADS + ["run"]


def test_the_exit_check_settles_every_step_without_new_threads(finalizer, zenml, monkeypatch):
    """At interpreter exit no thread may start: the pool refused, and the steps were lost."""
    monkeypatch.setattr(concurrent.futures.thread, "_shutdown", True)
    settled = [watched(finalizer, zenml, ExecutionStatus.COMPLETED, "step")[1] for _ in range(3)]
    finalizer.check()
    assert settled == [[ExecutionStatus.COMPLETED]] * 3
