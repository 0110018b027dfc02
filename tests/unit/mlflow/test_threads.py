import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import mlflow
import pytest
from mlflow.entities import Run, RunData
from mlflow.tracking import fluent

from tests.unit.conftest import copy_of
from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow import internals
from tracker_flavor.mlflow.internals import NO_STEP, Internals
from tracker_flavor.mlflow.threads import (
    StepContext,
    StepThreads,
    detached,
    lands,
    metric_step,
    nested_in_step,
    values_in,
)

pytestmark = pytest.mark.unit


def run(run_id: str, experiment_id: str = "7") -> Run:
    info = internals.run_info(
        run_id=run_id, experiment_id=experiment_id, user_id="", status="RUNNING",
        start_time=0, end_time=None, lifecycle_stage="active", run_name=run_id,
    )  # fmt: skip
    return Run(info, RunData())


@pytest.fixture
def threads():
    """Step threads of the test's own, with their hooks taken out afterwards."""
    made = StepThreads(Internals(Once()))
    yield made
    made.uninstall()


def seen_in_thread(threads: StepThreads, start) -> tuple[str | None, str | None]:
    """Return the active run and the step's run seen by work that `start` runs elsewhere."""
    seen: list[tuple[str | None, str | None]] = []

    def look() -> None:
        active, context = mlflow.active_run(), threads.current.get()
        seen.append((active and active.info.run_id, context and context.run.info.run_id))

    start(look)
    return seen[0]


def in_thread(work) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def test_a_step_run_outside_a_step_stays_as_given(monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    given = {"run_name": "mine"}
    assert nested_in_step(None, None, given) == given
    context = StepContext(run("step"))
    assert nested_in_step(context, None, {"run_id": "resumed"}) == {"run_id": "resumed"}
    monkeypatch.setenv("MLFLOW_RUN_ID", "platform")
    assert nested_in_step(context, None, given) == given


def test_a_run_started_in_a_step_is_nested_in_the_steps_experiment(monkeypatch):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    context = StepContext(run("step", experiment_id="7"))
    assert nested_in_step(context, "step", {"run_name": "mine"}) == {
        "run_name": "mine", "nested": True, "experiment_id": "7",
    }  # fmt: skip
    # With no active run (a thread that ended the step's run), it goes under the step's run.
    assert nested_in_step(context, None, {"experiment_id": "9"}) == {
        "experiment_id": "9", "nested": True, "parent_run_id": "step",
    }  # fmt: skip


def test_a_run_started_through_an_imported_start_run_joins_the_steps_experiment(
    threads, sqlite_uri, tracking_at
):
    from mlflow import MlflowClient, start_run  # imported before the step started

    client = MlflowClient(sqlite_uri)
    step_run = client.create_run(client.create_experiment("pipeline"))
    rule = fluent._get_experiment_id
    tracking_at(sqlite_uri)
    threads.enter()
    try:
        threads.begin(step_run)
        Internals(Once()).push_active_run(step_run)
        with start_run(nested=True) as mine:
            pass
        Internals(Once()).pop_active_runs(step_run.info.run_id)
        threads.end()
        assert fluent._get_experiment_id() == "0"  # outside a step's context: MLflow's own
    finally:
        threads.leave()
    assert fluent._get_experiment_id is rule
    stored = client.get_run(mine.info.run_id)
    assert stored.info.experiment_id == step_run.info.experiment_id
    assert stored.data.tags["mlflow.parentRunId"] == step_run.info.run_id


def test_the_hooks_stay_while_a_step_runs_and_go_with_the_last(threads):
    start, submit, start_run = threading.Thread.start, ThreadPoolExecutor.submit, mlflow.start_run
    threads.enter()
    threads.enter()
    threads.leave()
    assert threading.Thread.start is not start and mlflow.start_run is not start_run
    threads.leave()
    assert threading.Thread.start is start and ThreadPoolExecutor.submit is submit
    assert mlflow.start_run is start_run and fluent.start_run is start_run


def test_threads_and_pool_tasks_log_into_the_run_of_the_step_that_started_them(threads):
    """Two steps side by side, as mapped steps on one pool: each thread gets its own step's."""
    warm = ThreadPoolExecutor(1)
    warm.submit(int).result()  # a worker from before the steps
    threads.enter()
    seen = {}

    def step(name: str) -> None:
        threads.begin(run(name))
        seen[name] = (
            seen_in_thread(threads, in_thread),
            seen_in_thread(threads, lambda work: warm.submit(work).result()),
        )
        threads.end()

    try:
        in_thread(lambda: step("first"))
        contextvars.Context().run(in_thread, lambda: step("second"))
        outside = seen_in_thread(threads, in_thread)
    finally:
        threads.leave()
        warm.shutdown()
    assert seen["first"] == (("first", "first"), ("first", "first"))
    assert seen["second"] == (("second", "second"), ("second", "second"))
    assert outside == (None, None)


def test_a_threads_left_open_runs_are_kept_for_the_steps_end(threads):
    threads.enter()
    try:
        threads.begin(run("step"))
        seam = Internals(Once())
        in_thread(lambda: seam.push_active_run(run("users")))
        assert mlflow.active_run() is None  # the step's run is on the step's thread only
        assert threads.end() == ["users"]
        assert threads.end() == []
    finally:
        threads.leave()


def test_the_trackers_own_threads_belong_to_no_step(threads):
    threads.enter()
    try:
        threads.begin(run("step"))
        assert seen_in_thread(threads, lambda work: detached_join(work)) == (None, None)
        threads.end()
    finally:
        threads.leave()


def detached_join(work) -> None:
    thread = threading.Thread(target=work)
    detached(thread)
    thread.join()


def test_a_trace_in_a_step_names_its_own_threads_step_run(threads):
    """Two steps side by side: MLflow's rule alone names the later-started run for both."""
    seam, both_active, seen = Internals(Once()), threading.Barrier(2), {}
    original = fluent._get_latest_active_run
    threads.enter()

    def step(name: str, started: int) -> None:
        info = internals.run_info(
            run_id=name, experiment_id="7", user_id="", status="RUNNING",
            start_time=started, end_time=None, lifecycle_stage="active", run_name=name,
        )  # fmt: skip
        seam.push_active_run(Run(info, RunData()))
        threads.begin(Run(info, RunData()))
        both_active.wait()
        seen[name] = fluent._get_latest_active_run().info.run_id
        both_active.wait()
        seam.pop_active_runs(name)
        threads.end()

    try:
        first = threading.Thread(target=step, args=("first", 1))
        second = threading.Thread(target=step, args=("second", 2))
        for thread in (first, second):
            contextvars.Context().run(thread.start)
        for thread in (first, second):
            thread.join()
    finally:
        threads.leave()
    assert seen == {"first": "first", "second": "second"}
    assert fluent._get_latest_active_run is original


def test_a_stepless_metric_into_a_shared_run_goes_at_the_steps_position():
    shared = StepContext(run("parent"), metric_step=3)
    assert metric_step(shared, "parent", None) == 3
    assert metric_step(shared, "parent", NO_STEP) == 3  # `mlflow.log_metric`'s default
    assert metric_step(shared, "parent", 0) == 0  # the user's own step wins, 0 too
    assert metric_step(shared, "users_own", None) is None  # a run of the user's: as MLflow does
    assert type(metric_step(shared, "users_own", NO_STEP)) is int  # the marker as a plain 0
    assert metric_step(StepContext(run("child")), "child", None) is None  # nested: its own run
    assert metric_step(None, "parent", None) is None


@pytest.fixture
def tracking_at(monkeypatch):
    """Set the process's tracking URI for the test; restore it (and its variable) afterwards."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    seam = Internals(Once())
    before = seam.process_tracking_uri()
    yield mlflow.set_tracking_uri
    seam.set_process_tracking_uri(before)


def test_stepless_values_go_at_the_steps_position_however_the_call_was_imported(
    threads, sqlite_uri, tracking_at
):
    from mlflow import MlflowClient, log_metric, log_metrics  # imported before the step started

    client = MlflowClient(sqlite_uri)
    parent = client.create_run(client.create_experiment("shared"))
    other = client.create_run(parent.info.experiment_id).info.run_id
    client_calls = MlflowClient.log_metric, MlflowClient.log_batch
    tracking_at(sqlite_uri)
    threads.enter()
    try:
        threads.begin(parent, metric_step=2)
        Internals(Once()).push_active_run(parent)
        mlflow.log_metric("score", 0.5)
        log_metric("score", 0.55)
        mlflow.log_metric("score", 0.6, step=7)
        log_metric("score", 0.65, step=0)
        log_metrics({"loss": 0.1})
        fluent.log_metrics({"loss": 0.2}, synchronous=False).wait()
        client.log_metric(parent.info.run_id, "by_client", 1.0)
        in_thread(lambda: mlflow.log_metric("from_thread", 1.0))  # a thread the step started
        mlflow.log_metric("elsewhere", 1.0, run_id=other)
        Internals(Once()).pop_active_runs(parent.info.run_id)
        threads.end()
    finally:
        threads.leave()
    assert (MlflowClient.log_metric, MlflowClient.log_batch) == client_calls
    assert log_metric.__defaults__[0] is None and log_metrics.__defaults__[0] is None

    def steps(run_id: str, key: str) -> list[int]:
        return sorted(point.step for point in client.get_metric_history(run_id, key))

    assert steps(parent.info.run_id, "score") == [0, 2, 2, 7]
    assert steps(parent.info.run_id, "loss") == [2, 2]
    assert steps(parent.info.run_id, "from_thread") == steps(parent.info.run_id, "by_client") == [2]
    assert steps(other, "elsewhere") == [0]


def test_a_late_value_may_go_only_into_the_store_its_step_logged_to():
    context = StepContext(run("step"), tracking_uri="http://step-server")
    assert lands(None, "anywhere") and lands(context, "anywhere")  # the step runs
    context.ended = True
    assert lands(context, "http://step-server")  # the next step's, on the same server
    assert not lands(context, "sqlite:///mlflow.db")  # the process's own, after its last step


def test_a_write_call_carries_a_batchs_values_or_one():
    from mlflow.entities import Metric, Param

    metrics = [Metric("m", 1.0, 0, 0), Metric("m", 2.0, 0, 1)]
    assert values_in("log_batch", ("run", metrics, [Param("p", "1")], []), {}) == 3
    assert values_in("log_batch_async", (), {"run_id": "run", "metrics": metrics}) == 2
    assert values_in("log_metric", ("run", metrics[0]), {}) == 1


def test_a_thread_logging_after_its_steps_run_left_the_store_is_dropped_warned_once_counted(
    threads, sqlite_uri, migrated_db, tmp_path, tracking_at, caplog
):
    """The step logged to one store; after its end the process logs to another (its own)."""
    from mlflow import MlflowClient

    client = MlflowClient(sqlite_uri)
    step_run = client.create_run(client.create_experiment("late"))
    other = client.create_run(step_run.info.experiment_id).info.run_id
    release, logged, again, errors = threading.Event(), threading.Event(), threading.Event(), []
    (tmp_path / "own").mkdir()
    own_store = copy_of(migrated_db, tmp_path / "own")  # the process's own, after its steps

    def late() -> None:
        release.wait(10)
        try:
            mlflow.log_metric("late", 1.0)
            mlflow.log_metrics({"a": 1.0, "b": 2.0}, synchronous=False).wait()
            mlflow.set_tag("late", "x")
            MlflowClient(sqlite_uri).log_metric(other, "explicit", 1.0)  # the user's own call
            logged.set()
            again.wait(10)
            mlflow.set_tag("later", "y")
        except Exception as error:
            errors.append(error)

    from mlflow.tracking._tracking_service import utils

    get_store = utils._get_store
    threads.install()
    tracking_at(sqlite_uri)
    threads.enter()
    threads.begin(step_run, step_name="train")
    thread = threading.Thread(target=late)
    thread.start()
    threads.end()
    threads.leave()  # the process's last step: the step hooks go, the store lookup stays
    tracking_at(own_store)
    with caplog.at_level(logging.INFO):
        release.set()
        assert logged.wait(10)
        threads.report_dropped()  # the process exits while the thread runs: the count so far
        again.set()
        thread.join(10)  # its end counts the rest
    threads.uninstall()
    assert utils._get_store is get_store
    assert errors == []
    assert MlflowClient(own_store).search_runs(["0"]) == []  # no stray run
    stored = client.get_run(step_run.info.run_id).data
    assert stored.metrics == {} and "late" not in stored.tags
    assert client.get_run(other).data.metrics == {"explicit": 1.0}
    messages = [r.getMessage() for r in caplog.records if "'train'" in r.getMessage()]
    assert len(messages) == 3 and step_run.info.run_id in messages[0]
    assert messages[1].endswith("after the step ended, dropped: 4.")
    assert messages[2].endswith("after the step ended, dropped: 1.")
