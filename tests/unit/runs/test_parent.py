"""The parent run comes from the cheapest source that knows it; a deleted one is replaced."""

from contextlib import contextmanager

import pytest
from mlflow import MlflowClient

from tests.unit.conftest import copy_of
from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.mlflow.process import MlflowProcess
from tracker_flavor.runs import mlflow_runs as runs
from tracker_flavor.runs import parent
from tracker_flavor.runs.metadata import ParentRecord
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.state import RunState

pytestmark = pytest.mark.unit


class Records:
    """Parent records in memory, counting reads (ZenML requests)."""

    def __init__(self, record: ParentRecord | None = None) -> None:
        self.record, self.reads, self.written = record, 0, []

    def read(self, pipeline_run_id):
        self.reads += 1
        return self.record

    def write(self, pipeline_run_id, created):
        self.written.append(created)

    @contextmanager
    def lock(self, pipeline_run_id, recorded):
        yield recorded()


class Counting(MlflowClient):
    """A real client of a SQLite store that counts the requests the rules make."""

    requests = 0

    def __getattribute__(self, name):
        if name in {"search_runs", "create_run", "get_experiment_by_name", "create_experiment"}:
            type(self).requests += 1
        return super().__getattribute__(name)


@pytest.fixture(scope="module")
def store(tmp_path_factory, migrated_db):
    uri = copy_of(migrated_db, tmp_path_factory.mktemp("parent"))
    return Counting(uri), Connection(uri)


def fresh_state() -> RunState:
    """Return the run state of a process of its own: nothing cached yet."""
    return RunState(MlflowProcess(Once()))


SPEC = parent.ParentSpec("run-1", "exp", "the-run", {"k": "v"})


def test_the_experiment_is_looked_up_once_per_process(store):
    client, connection = store
    state = fresh_state()
    first = parent.experiment_id(client, connection, "exp", state)
    before = Counting.requests
    assert parent.experiment_id(client, connection, "exp", state) == first
    assert Counting.requests == before


def test_a_recorded_parent_costs_no_mlflow_search_and_is_cached(store):
    client, connection = store
    state = fresh_state()
    exp_id = parent.experiment_id(client, connection, "exp", state)
    records = Records(ParentRecord("p1", exp_id, connection.shown, 1234))
    before = Counting.requests
    found = parent.resolve(client, connection, SPEC, records, state)
    assert found == Parent("p1", exp_id, "the-run", 1234)
    assert parent.resolve(client, connection, SPEC, records, state) is found
    assert (Counting.requests, records.reads) == (before, 1)


def test_a_record_for_another_store_or_experiment_is_not_used():
    record = ParentRecord("p1", "1", "sqlite:///a.db", None)
    assert record.is_for(Connection("sqlite:///a.db"), "1")
    assert not record.is_for(Connection("sqlite:///b.db"), "1")
    assert not record.is_for(Connection("sqlite:///a.db"), "2")


def test_a_deleted_parent_is_replaced_once_with_its_name_and_tags(store, caplog):
    """A parent deleted in MLflow while its ZenML run goes on must not fail the next step."""
    client, connection = store
    state = fresh_state()
    exp_id = parent.experiment_id(client, connection, "exp", state)
    gone = runs.create_parent(client, exp_id, "the-run", {"k": "v"})
    client.delete_run(gone.run_id)
    state.parents.put((connection.uri, SPEC.pipeline_run_id), gone)
    records = Records(ParentRecord(gone.run_id, exp_id, connection.shown, None))
    with pytest.raises(Exception) as error:
        runs.log(client, gone.run_id, {"t": "v"}, {})
    assert runs.is_gone(error.value)
    new = parent.replace(client, connection, SPEC, gone, records, state)
    assert new.run_id != gone.run_id and records.written == [new]
    run = client.get_run(new.run_id)
    assert (run.info.run_name, run.data.tags["k"]) == ("the-run", "v")
    assert "was deleted" in caplog.text
    # Another step of the process that still had the old parent gets the same replacement.
    assert parent.replace(client, connection, SPEC, gone, records, state) == new


def test_without_a_record_the_parent_is_searched_by_tag_else_created(store):
    client, connection = store
    state = fresh_state()
    spec = parent.ParentSpec("run-2", "exp", "second", {"zenml.pipeline_run_id": "run-2"})
    records = Records()
    created = parent.resolve(client, connection, spec, records, state)
    assert records.written == [created] and created.status == "RUNNING" and created.start_time
    # Another process, without the record: the tag search finds the same parent.
    again = parent.resolve(client, connection, spec, Records(), fresh_state())
    assert again.run_id == created.run_id


def test_under_an_existing_run_the_parent_goes_into_its_experiment_as_its_child(store):
    client, connection = store
    state = fresh_state()
    umbrella = runs.create_parent(
        client, parent.experiment_id(client, connection, "team", state), "u", {}
    )
    spec = parent.ParentSpec(
        "run-3", "pipeline", "third",
        {"zenml.pipeline_run_id": "run-3", "mlflow.parentRunId": umbrella.run_id},
        under=umbrella.run_id, experiment_named=False,
    )  # fmt: skip
    created = parent.resolve(client, connection, spec, Records(), state)
    assert created.experiment_id == umbrella.experiment_id
    assert client.get_experiment_by_name("pipeline") is None  # no experiment of its own
    # Another process finds it by its tag, although it is a child itself.
    assert parent.resolve(client, connection, spec, Records(), fresh_state()) == created
    # The run's experiment is looked up once per process.
    before = Counting.requests
    parent.run_experiment(client, connection, spec, state)
    assert Counting.requests == before


def test_parent_run_id_of_a_missing_run_or_another_experiment_is_refused_with_the_fix(store):
    client, connection = store
    state = fresh_state()
    umbrella = runs.create_parent(
        client, parent.experiment_id(client, connection, "team", state), "u", {}
    )
    elsewhere = parent.ParentSpec("run-4", "other", "r", under=umbrella.run_id)
    with pytest.raises(
        ValueError,
        match="experiment_name 'other' conflicts with parent_run_id .* 'team': MLflow .* Remove experiment_name, or set it to 'team'",
    ):
        parent.resolve(client, connection, elsewhere, Records(), state)
    same = parent.ParentSpec("run-4", "team", "r", under=umbrella.run_id)
    assert (
        parent.resolve(client, connection, same, Records(), state).experiment_id
        == umbrella.experiment_id
    )
    for missing in ("f" * 32, umbrella.run_id):
        client.delete_run(umbrella.run_id)
        gone = parent.ParentSpec("run-5", "p", "r", under=missing, experiment_named=False)
        with pytest.raises(
            ValueError,
            match=f"parent_run_id {missing} is not an active run of the MLflow store .*: correct parent_run_id",
        ):
            parent.resolve(client, connection, gone, Records(), fresh_state())
