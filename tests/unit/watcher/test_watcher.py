"""The watcher settles each watched run once ZenML reports it finished, and never raises."""

import concurrent.futures.thread
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.watcher.watcher import SETTLE_THREADS, Watcher

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
def watcher(zenml: Zenml):
    watching = Watcher(ReadersWriterLock(), zenml)
    yield watching
    watching.stop()


def watched(watcher: Watcher, zenml: Zenml, status=ExecutionStatus.RUNNING, kind="run"):
    """Watch a new run in `status`; return its id and the statuses it was settled with."""
    run_id, settled = uuid.uuid4(), []
    zenml.statuses[run_id] = status
    if kind == "step":
        watcher.watch_step(run_id, settled.append)
    else:
        watcher.watch(run_id, settled.append)
    return run_id, settled


def test_a_run_is_settled_once_when_zenml_reports_it_finished(watcher, zenml):
    run_id, settled = watched(watcher, zenml)
    watcher.check()
    assert settled == []  # still running
    zenml.statuses[run_id] = ExecutionStatus.FAILED
    watcher.check()
    watcher.check()
    assert settled == [ExecutionStatus.FAILED]


def test_runs_and_steps_are_asked_for_together(watcher, zenml):
    run_id, _ = watched(watcher, zenml)
    step_id, _ = watched(watcher, zenml, kind="step")
    watcher.check()
    assert ([run_id], [step_id]) in zenml.reads


def test_a_run_zenml_no_longer_knows_is_dropped_unsettled(watcher, zenml):
    run_id, settled = watched(watcher, zenml)
    del zenml.statuses[run_id]  # the run was deleted
    watcher.check()
    zenml.statuses[run_id] = ExecutionStatus.COMPLETED
    watcher.check()
    assert settled == []


def test_a_failed_read_keeps_the_runs_watched(watcher, zenml, caplog):
    run_id, settled = watched(watcher, zenml, ExecutionStatus.COMPLETED)
    zenml.error = ConnectionError("https://user:hunter2@zenml.example down")
    watcher.check()
    assert settled == []
    assert "hunter2" not in caplog.text
    zenml.error = None
    watcher.check()
    assert settled == [ExecutionStatus.COMPLETED]


def test_a_failing_settle_neither_raises_nor_stops_the_others(watcher, zenml):
    def explode(status: ExecutionStatus) -> None:
        raise RuntimeError("MLflow is down")

    failing = uuid.uuid4()
    zenml.statuses[failing] = ExecutionStatus.COMPLETED
    watcher.watch(failing, explode)
    _, settled = watched(watcher, zenml, ExecutionStatus.COMPLETED)
    watcher.check()
    assert settled == [ExecutionStatus.COMPLETED]


def test_the_watcher_thread_settles_without_being_asked(watcher, zenml):
    _, settled = watched(watcher, zenml, ExecutionStatus.COMPLETED)
    deadline = time.monotonic() + 5
    while not settled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert settled == [ExecutionStatus.COMPLETED]


def test_finished_steps_are_settled_side_by_side_and_their_run_after_them(watcher, zenml):
    """A wide map's outputs, sent one step at a time, lagged a minute behind its run."""
    together = threading.Barrier(SETTLE_THREADS, timeout=5)
    order: list[str] = []

    def step(status: ExecutionStatus) -> None:
        together.wait()  # breaks unless SETTLE_THREADS steps are settled at once
        order.append("step")

    run_id, _ = watched(watcher, zenml, ExecutionStatus.COMPLETED)
    watcher.watch(run_id, lambda status: order.append("run"))
    for _ in range(SETTLE_THREADS):
        step_id = uuid.uuid4()
        zenml.statuses[step_id] = ExecutionStatus.COMPLETED
        watcher.watch_step(step_id, step)
    watcher.check()
    assert order == ["step"] * SETTLE_THREADS + ["run"]


def test_the_exit_check_settles_every_step_without_new_threads(watcher, zenml, monkeypatch):
    """At interpreter exit no thread may start: the pool refused, and the steps were lost."""
    monkeypatch.setattr(concurrent.futures.thread, "_shutdown", True)
    settled = [watched(watcher, zenml, ExecutionStatus.COMPLETED, "step")[1] for _ in range(3)]
    watcher.check()
    assert settled == [[ExecutionStatus.COMPLETED]] * 3


def published(step_id: uuid.UUID, status: ExecutionStatus) -> SimpleNamespace:
    """A step run as ZenML's launcher returns it."""
    return SimpleNamespace(id=step_id, status=status)


def test_a_step_published_in_this_thread_is_settled_here_at_once_and_only_once(watcher, zenml):
    step_id, _ = watched(watcher, zenml, ExecutionStatus.RUNNING, "step")
    threads: list[str] = []
    watcher.watch_step(step_id, lambda step_run: threads.append(threading.current_thread().name))
    watcher.finish(published(step_id, ExecutionStatus.RUNNING))  # not final: left to the watcher
    assert threads == []
    watcher.finish(published(step_id, ExecutionStatus.COMPLETED))
    assert threads == [threading.current_thread().name]
    zenml.statuses[step_id] = ExecutionStatus.COMPLETED
    watcher.check()
    watcher.finish(published(step_id, ExecutionStatus.COMPLETED))
    assert len(threads) == 1


def test_a_launch_s_step_and_its_run_cost_no_poll_until_the_launch_is_over(watcher, zenml):
    """A local run's steps: each launch returns its step, and the run cannot end meanwhile."""
    run_id, run_settled = watched(watcher, zenml, ExecutionStatus.RUNNING)
    other_run, _ = watched(watcher, zenml, ExecutionStatus.RUNNING)  # no launch of it here
    step_id, settled = uuid.uuid4(), []
    with watcher.launching():
        watcher.running(run_id)
        watcher.watch_step(step_id, settled.append)
        watcher.check()
        assert zenml.reads == [([other_run], [])]
        step_run = published(step_id, ExecutionStatus.COMPLETED)
        watcher.finish(step_run)
        assert settled == [step_run]  # as the launch returned it, no read
    zenml.statuses[run_id] = ExecutionStatus.COMPLETED
    watcher.check()
    assert zenml.reads[-1] == ([run_id, other_run], [])
    assert run_settled == [ExecutionStatus.COMPLETED]


def test_a_run_stays_unpolled_while_any_launch_of_it_goes_on(watcher, zenml):
    run_id, _ = watched(watcher, zenml, ExecutionStatus.RUNNING)
    with watcher.launching():
        watcher.running(run_id)
        mapped = threading.Thread(target=lambda: watcher.running(run_id))  # no launch: no mark
        mapped.start()
        mapped.join()
        with watcher.launching():  # a launch inside a launch (a dynamic pipeline's step)
            watcher.running(run_id)
        watcher.check()
        assert zenml.reads == []
    watcher.check()
    assert zenml.reads == [([run_id], [])]


def test_a_step_whose_launch_raised_is_left_to_the_polls(watcher, zenml):
    """ZenML failed it after the tracker's hooks (storing an output): its word decides."""
    step_id, settled = uuid.uuid4(), []
    with pytest.raises(OSError), watcher.launching():
        watcher.watch_step(step_id, settled.append)
        raise OSError("artifact store full")
    zenml.statuses[step_id] = ExecutionStatus.FAILED
    watcher.check()
    assert zenml.reads == [([], [step_id])]
    assert settled == [ExecutionStatus.FAILED]


def test_finishing_a_step_the_watcher_is_settling_waits_until_it_is_settled(watcher, zenml):
    started, release, finished = threading.Event(), threading.Event(), threading.Event()
    settled: list[ExecutionStatus] = []

    def slow(status: ExecutionStatus) -> None:
        started.set()
        release.wait(5)
        settled.append(status)

    step_id = uuid.uuid4()
    zenml.statuses[step_id] = ExecutionStatus.COMPLETED
    watcher.watch_step(step_id, slow)
    checking = threading.Thread(target=watcher.check, daemon=True)
    checking.start()
    assert started.wait(5)

    def finish() -> None:
        watcher.finish(published(step_id, ExecutionStatus.COMPLETED))
        finished.set()

    threading.Thread(target=finish, daemon=True).start()
    assert not finished.wait(0.2)  # the outputs are still being sent
    release.set()
    assert finished.wait(5)
    assert settled == [ExecutionStatus.COMPLETED]
    checking.join(5)


def test_polls_are_quick_again_after_each_new_step_not_only_at_the_start(watcher):
    from tracker_flavor.watcher.polling import FIRST_SECONDS, LAST_SECONDS

    watcher.watch(uuid.uuid4(), lambda status: None)
    assert watcher.next_wait(time.monotonic() + 60) == LAST_SECONDS
    watcher.watch(uuid.uuid4(), lambda status: None)  # another run: no step ended
    assert watcher.next_wait(time.monotonic() + 60) == LAST_SECONDS
    watcher.watch_step(uuid.uuid4(), lambda step_run: None)
    assert watcher.next_wait(time.monotonic()) == pytest.approx(FIRST_SECONDS, abs=0.01)


def test_a_thread_s_next_launch_keeps_its_last_run_unpolled_until_it_names_its_own(watcher, zenml):
    """ZenML names the run only once the step starts: between two steps the run would be polled."""
    run_id, _ = watched(watcher, zenml, ExecutionStatus.RUNNING)
    with watcher.launching():
        watcher.running(run_id)
    with watcher.launching():  # the next step, before its hook named the run (or a cached one)
        watcher.check()
        assert zenml.reads == []
    with watcher.launching():
        watcher.running(uuid.uuid4())  # a step of another run
    with watcher.launching():
        watcher.check()
    assert zenml.reads == [([run_id], [])]
