"""Mapped steps of a dynamic pipeline on ZenML's thread pool share one tracker instance."""

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.pipelines import fan_out
from tests.integration.test_run_model import runs_of
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration

STAGES = {1.0: "items", 2.0: "total"}
"""The `stage` each of fan_out's unmapped steps logs."""


@pytest.fixture
def mlflow_store(request):
    """The MLflow store the run goes to: the embedded one, or the ZenML server topology's."""
    if request.param == "zenml-server":
        return MlflowClient(request.getfixturevalue("on_topology").mlflow.url)
    return request.getfixturevalue("embedded_client")


@pytest.mark.parametrize(
    ("nested", "count", "workers", "mlflow_store"),
    [
        (True, 8, "10", "embedded"),  # 10: ZenML's default pool size
        (True, 16, "8", "embedded"),
        (False, 16, "8", "embedded"),
        (False, 16, "8", "zenml-server"),  # unified: positions asked over REST
    ],
    indirect=["mlflow_store"],
)
def test_mapped_steps_on_the_thread_pool(
    nested, count, workers, mlflow_store, process_snapshot, monkeypatch
):
    monkeypatch.setenv("ZENML_DYNAMIC_PIPELINE_WORKER_COUNT", workers)
    pipeline = fan_out.with_options(settings={"experiment_tracker": {"nested": nested}})
    run = Client().get_pipeline_run(pipeline(count=count).id)
    assert run.status == "completed"
    parents, children = runs_of(mlflow_store, run.id)
    assert len(parents) == 1
    parent = parents[0]
    assert wait_for_status(mlflow_store, parent.info.run_id, "FINISHED") == "FINISHED"
    square_steps = sorted(name for name in run.steps if name.startswith("map:square"))
    assert len(square_steps) == count
    # Mapped steps get their own runs in unified mode too; the others share the parent there.
    assert set(children) == ({"items", "total"} if nested else set()) | set(square_steps)
    assert all(child.info.status == "FINISHED" for child in children.values())
    if not nested:  # two steps log `stage` without a step: each at its position, none hidden
        stage = mlflow_store.get_metric_history(parent.info.run_id, "stage")
        places = {v: int(parent.data.tags[f"{tags.STEP_INDEX}{s}"]) for v, s in STAGES.items()}
        assert sorted((point.value, point.step) for point in stage) == sorted(places.items())
        assert len(set(places.values())) == 2
    logged = {key for run in (parent, *children.values()) for key in run.data.metrics}
    run_ids = {name: children[name].info.run_id for name in square_steps}
    assert {f"square_{x}" for x in range(count)} <= logged and "total" in logged
    for name in square_steps:
        metadata = run.steps[name].run_metadata
        assert metadata["mlflow_run_id"] == run_ids[name]
        assert metadata["mlflow_parent_run_id"] == parent.info.run_id
    for x in range(count):
        points = [
            m
            for rid in set(run_ids.values())
            for m in mlflow_store.get_metric_history(rid, f"square_{x}")
        ]
        assert len(points) == 10


def wait_for_status(client, run_id, status, seconds=20.0):
    """Poll MLflow for a run's status: the watcher settles dynamic runs just after they end."""
    import time

    deadline = time.monotonic() + seconds
    while (current := client.get_run(run_id).info.status) != status and time.monotonic() < deadline:
        time.sleep(0.2)
    return current


def test_one_mapped_step_ending_leaves_autologging_on_for_the_others(
    zenml_stack, embedded_client, process_snapshot
):
    """The first mapped step to end must not turn autologging off for the process."""
    from mlflow.utils.autologging_utils import autologging_is_disabled

    from tests.integration.pipelines import autolog_overlap

    assert autologging_is_disabled("mlflow")
    run = Client().get_pipeline_run(autolog_overlap().id)
    assert run.status == "completed"
    probes = sorted(name for name in run.steps if name.startswith("map:autolog_probe"))
    assert len(probes) == 2
    assert [run.steps[name].outputs["output"][0].load() for name in probes] == [True, True]
    assert autologging_is_disabled("mlflow")  # back to the state before the pipeline
