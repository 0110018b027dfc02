"""`runs --repair` gives a finished ZenML run's MLflow runs ZenML's statuses, once."""

import uuid
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient
from zenml.enums import ExecutionStatus

from tracker_flavor.runs import metadata as records
from tracker_flavor.runs import mlflow_runs as runs
from tracker_flavor.runs import reconcile, tags

pytestmark = pytest.mark.unit


class Store:
    """The ZenML store's step runs of one pipeline run (one attempt each), by id."""

    def __init__(self, run_id: uuid.UUID, steps: dict[uuid.UUID, tuple[str, ExecutionStatus]]):
        self.run_id, self.steps = run_id, steps

    def get_run_step(self, step_run_id, hydrate):
        return SimpleNamespace(status=self.steps[step_run_id][1])

    def list_run_steps(self, step_filter):
        """Answer ZenML's step query: filtered by status and name, sorted, one page."""
        found = [
            SimpleNamespace(name=name, status=status, version=1)
            for name, status in self.steps.values()
            if step_filter.pipeline_run_id == self.run_id
            and step_filter.status in (None, status.value)
            and step_filter.name in (None, name)
        ]
        if step_filter.sort_by == "asc:name":
            found.sort(key=lambda step: step.name)
        return SimpleNamespace(items=found[: step_filter.size], total=len(found))


@pytest.fixture
def killed(sqlite_uri):
    """A ZenML run that failed in `b` after a SIGKILL left its MLflow runs as they were."""
    client = MlflowClient(sqlite_uri)
    exp_id = client.create_experiment("killed")
    run_id, step_a, step_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    parent = runs.create_parent(client, exp_id, "the-run", {tags.PIPELINE_RUN_ID: str(run_id)})
    child_a = runs.create_step_run(client, parent, "a", {tags.STEP_RUN_ID: str(step_a)})
    child_b = runs.create_step_run(client, parent, "b", {tags.STEP_RUN_ID: str(step_b)})
    client.set_terminated(child_b.info.run_id, "FINISHED")  # b failed after its cleanup
    pipeline_run = SimpleNamespace(
        id=run_id,
        status=ExecutionStatus.FAILED,
        run_metadata={records.EXPERIMENT_ID_KEY: exp_id},
        steps={
            "a": SimpleNamespace(status=ExecutionStatus.COMPLETED),
            "b": SimpleNamespace(status=ExecutionStatus.FAILED),
        },
    )
    store = Store(
        run_id, {step_a: ("a", ExecutionStatus.COMPLETED), step_b: ("b", ExecutionStatus.FAILED)}
    )
    return client, pipeline_run, store, (parent.run_id, child_a.info.run_id, child_b.info.run_id)


def test_every_run_gets_zenmls_status_and_a_second_repair_changes_nothing(killed):
    client, pipeline_run, store, (parent_id, a_id, b_id) = killed
    repairs = reconcile.reconcile_run(pipeline_run, client, store)
    assert {(r.run_id, r.before, r.after) for r in repairs} == {
        (a_id, "RUNNING", "FINISHED"),
        (b_id, "FINISHED", "FAILED"),
        (parent_id, "RUNNING", "FAILED"),
    }
    parent = client.get_run(parent_id)
    assert parent.info.status == "FAILED" and parent.data.tags[tags.FAILED_STEP] == "b"
    assert reconcile.reconcile_run(pipeline_run, client, store) == []


def test_a_run_still_going_is_left_alone(killed):
    client, pipeline_run, store, (parent_id, a_id, _) = killed
    pipeline_run.status = ExecutionStatus.RUNNING
    assert reconcile.reconcile_run(pipeline_run, client, store) == []
    assert client.get_run(a_id).info.status == client.get_run(parent_id).info.status == "RUNNING"


def test_the_recorded_parent_is_used_before_a_tag_search(killed):
    client, pipeline_run, _, (parent_id, _, _) = killed
    assert reconcile.parent_run_id(pipeline_run, client) == parent_id  # by the tag
    pipeline_run.run_metadata = {records.PARENT_RUN_ID_KEY: "recorded"}
    assert reconcile.parent_run_id(pipeline_run, client) == "recorded"
    pipeline_run.run_metadata = {}
    assert reconcile.parent_run_id(pipeline_run, client) is None
