"""A step's runs: opened with few requests, active for its code, ended with its status."""

import threading
from contextlib import contextmanager

import mlflow
import pytest
from mlflow import MlflowClient

from tests.unit.conftest import copy_of
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runs import mlflow_runs as runs
from tracker_flavor.runs import steps, tags
from tracker_flavor.runs.plan import PipelineFacts, StepFacts, step_plan
from tracker_flavor.runtime import Runtime, runtime

pytestmark = pytest.mark.unit

REQUESTS = {"create_run", "log_batch", "search_runs", "set_terminated", "get_run", "update_run"}


class Counting(MlflowClient):
    """A real client of a SQLite store that counts run requests."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.calls: list[str] = []

    def __getattribute__(self, name):
        if name in REQUESTS:
            object.__getattribute__(self, "calls").append(name)
        return super().__getattribute__(name)


class Records:
    """No record in ZenML: the step resolves the parent itself."""

    def __init__(self) -> None:
        self.written = []

    def read(self, pipeline_run_id):
        return None

    def write(self, pipeline_run_id, created):
        self.written.append(created)

    @contextmanager
    def lock(self, pipeline_run_id, recorded):
        yield recorded()


@pytest.fixture(scope="module")
def store(tmp_path_factory, migrated_db):
    uri = copy_of(migrated_db, tmp_path_factory.mktemp("steps"))
    return Counting(uri), Connection(uri)


def plan_of(run_id: str, pipeline_params=None, **settings):
    pipeline = PipelineFacts(run_id, f"name-{run_id}", "pipe", parameters=pipeline_params or {})
    facts = StepFacts(pipeline, "fit", "s1", 1, {"a": 1})
    return step_plan(MLflowPlusSettings(**settings), facts, "alice")


def resolved(store, plan, state):
    """Start a first step of the run, which resolves its parent, and leave its run."""
    client, connection = store
    step = steps.start(client, connection, plan, Records(), state)
    runtime.mlflow.seam.pop_active_runs(step.run_id)
    client.calls.clear()
    return step


def test_a_unified_step_makes_the_parent_its_active_run_with_its_name_and_start(store):
    """Every step, not only the one that created the parent, sees its name and start."""
    client, connection = store
    state = Runtime().runs
    first = resolved(store, plan_of("u1"), state)
    step = steps.start(client, connection, plan_of("u1"), Records(), state)
    active = mlflow.active_run()
    assert active is not None and active.info.run_id == step.parent.run_id
    parent = client.get_run(step.parent.run_id)
    assert (active.info.run_name, active.info.start_time) == (
        parent.info.run_name, parent.info.start_time,
    )  # fmt: skip
    assert first.parent == step.parent and parent.data.params == {"fit.a": "1"}
    assert parent.data.tags[tags.LAST_STEP] == "fit"
    steps.end(client, step, failed=False, state=state)
    assert mlflow.active_run() is None


def test_a_known_parent_costs_one_request_to_start_a_unified_step(store):
    client, connection = store
    state = Runtime().runs
    resolved(store, plan_of("u2"), state)
    step = steps.start(client, connection, plan_of("u2"), Records(), state)
    assert client.calls == ["log_batch"]
    steps.end(client, step, failed=False, state=state)
    assert client.calls == ["log_batch"]  # the parent is settled once, for the run


def test_a_nested_step_gets_a_child_and_ends_it_with_its_status(store):
    client, connection = store
    state = Runtime().runs
    resolved(store, plan_of("n1", nested=True), state)
    step = steps.start(client, connection, plan_of("n1", nested=True), Records(), state)
    assert client.calls == ["log_batch", "create_run"]  # params go in the first batch
    child = client.get_run(step.run_id)
    assert child.data.tags["mlflow.parentRunId"] == step.parent.run_id
    assert child.data.tags[tags.STEP_NAME] == "fit"
    left_open = client.create_run(child.info.experiment_id).info.run_id
    runtime.mlflow.seam.push_active_run(client.get_run(left_open))
    steps.end(client, step, failed=True, state=state)
    assert client.get_run(step.run_id).info.status == "FAILED"
    assert client.get_run(left_open).info.status == "FAILED"


def test_a_step_whose_parent_was_deleted_logs_to_a_new_one(store):
    """The step failed with "must be in the 'active' state"."""
    client, connection = store
    state = Runtime().runs
    first = resolved(store, plan_of("d1"), state)
    client.delete_run(first.parent.run_id)
    step = steps.start(client, connection, plan_of("d1", tags={"team": "ml"}), Records(), state)
    runtime.mlflow.seam.pop_active_runs(step.run_id)
    assert step.parent.run_id != first.parent.run_id
    replaced = client.get_run(step.parent.run_id)
    assert replaced.info.run_name == "name-d1" and replaced.data.tags[tags.PIPELINE_RUN_ID] == "d1"
    assert replaced.data.tags["team"] == "ml"  # the step's tags reach the parent
    assert runs.find_parent_runs(client, replaced.info.experiment_id, "d1")[0].info.run_id == (
        step.parent.run_id
    )


@pytest.mark.parametrize("nested", [False, True])
def test_the_first_step_of_a_process_gives_the_parent_the_pipeline_params_in_its_request(
    store, nested, monkeypatch
):
    client, connection = store
    state = Runtime().runs
    plan = plan_of(f"p-{nested}", {"C": 0.5}, nested=nested)
    first = steps.start(client, connection, plan, Records(), state)
    runtime.mlflow.seam.pop_active_runs(first.run_id)
    assert client.get_run(first.parent.run_id).data.params["C"] == "0.5"
    logged = []
    log_batch = client.log_batch
    monkeypatch.setattr(
        client, "log_batch", lambda *a, **kw: logged.append(kw["params"]) or log_batch(*a, **kw)
    )
    step = steps.start(client, connection, plan, Records(), state)
    runtime.mlflow.seam.pop_active_runs(step.run_id)
    assert logged and all(p.key != "C" for p in logged[0])  # later steps leave them out
    monkeypatch.undo()
    client.delete_run(step.parent.run_id)
    replaced = steps.start(client, connection, plan, Records(), state)
    runtime.mlflow.seam.pop_active_runs(replaced.run_id)
    assert client.get_run(replaced.parent.run_id).data.params["C"] == "0.5"


class WaitingForAnotherProcess(Records):
    """The creation lock is held by another process until `released` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting, self.released = threading.Event(), threading.Event()

    @contextmanager
    def lock(self, pipeline_run_id, recorded):
        self.waiting.set()
        self.released.wait(30)
        yield recorded()


def test_a_step_waiting_for_the_creation_lock_holds_up_neither_other_steps_nor_autologging(
    store,
):
    """With the autolog lock held through a start, steps started one at a time."""
    _, connection = store
    state = Runtime().runs
    blocked, started = WaitingForAnotherProcess(), []

    def start(plan, records) -> None:
        with steps.client(connection, state.mlflow) as client:
            step = steps.start(client, connection, plan, records, state)
        runtime.mlflow.seam.pop_active_runs(step.run_id)
        started.append(step.parent.run_id)

    waiting = threading.Thread(target=start, args=(plan_of("w1"), blocked))
    waiting.start()
    try:
        assert blocked.waiting.wait(30)
        other = threading.Thread(target=start, args=(plan_of("w2"), Records()))
        other.start()
        other.join(30)
        assert not other.is_alive() and len(started) == 1  # started while the first one waits
        state.mlflow.autologging.enter(False)  # a third step turns autologging on (or not)
        state.mlflow.autologging.leave()
    finally:
        blocked.released.set()
        waiting.join(30)
    assert len(started) == 2


def test_client_calls_wait_while_a_step_turns_autologging_on(store):
    """A call importing lazily beside `mlflow.autolog()` importing deadlocked."""

    _, connection = store
    searched = threading.Event()

    def search() -> None:
        with steps.client(connection, runtime.mlflow) as client:
            client.search_experiments()
        searched.set()

    with runtime.mlflow.autologging.lock.exclusive():
        thread = threading.Thread(target=search)
        thread.start()
        assert not searched.wait(0.2)
    thread.join(30)
    assert searched.is_set()
