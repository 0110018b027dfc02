"""Behaviours users of the built-in `mlflow` flavor rely on, in real pipelines."""

import logging
import os

import mlflow
import pytest
from mlflow import MlflowClient
from zenml import get_step_context, pipeline, step
from zenml.client import Client
from zenml.enums import ExecutionStatus

from tests.integration.conftest import TRACKER
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration

X = [[0.0], [1.0], [2.0], [3.0]]
Y = [0, 0, 1, 1]
USER_TAGS = {"team": "vision"}


@step(experiment_tracker=TRACKER)
def first() -> int:
    mlflow.log_metric("first", 1.0)
    return 1


@step
def delete_parent() -> None:
    """Delete the pipeline run's MLflow parent run, as a user in the MLflow UI could."""
    from tracker_flavor.mlflow.embedded import embedded_tracking_uri
    from tracker_flavor.runtime import runtime

    run = get_step_context().pipeline_run
    parent_id = Client().get_pipeline_run(run.id).run_metadata["mlflow_parent_run_id"]
    store = embedded_tracking_uri(Client().active_stack.artifact_store.path, runtime.mlflow.stores)
    MlflowClient(tracking_uri=store).delete_run(parent_id)


@step(experiment_tracker=TRACKER)
def second() -> int:
    mlflow.log_metric("second", 2.0)
    return 2


@pipeline(enable_cache=False, settings={"experiment_tracker": {"tags": USER_TAGS}})
def parent_deleted() -> None:
    first()
    delete_parent(after="first")
    second(after="delete_parent")


def test_a_deleted_parent_is_recreated_with_its_tags_and_a_warning(
    zenml_stack, embedded_client, caplog
):
    with caplog.at_level(logging.WARNING):
        run = Client().get_pipeline_run(parent_deleted().id)
    assert run.status == ExecutionStatus.COMPLETED
    old_parent = run.steps["first"].run_metadata["mlflow_parent_run_id"]
    new_parent = run.steps["second"].run_metadata["mlflow_parent_run_id"]
    assert new_parent != old_parent
    assert embedded_client.get_run(old_parent).info.lifecycle_stage == "deleted"
    recreated = embedded_client.get_run(new_parent)
    assert recreated.info.lifecycle_stage == "active"
    assert recreated.data.tags[tags.PIPELINE_RUN_ID] == str(run.id)
    assert recreated.data.tags["team"] == "vision"
    assert recreated.data.metrics["second"] == 2.0
    assert any(old_parent in r.getMessage() and "deleted" in r.getMessage() for r in caplog.records)


@step(experiment_tracker=TRACKER)
def user_nested_run() -> str:
    with mlflow.start_run(nested=True) as child:
        mlflow.log_metric("inner", 1.0)
    assert os.environ.get("MLFLOW_RUN_ID") is None
    return str(child.info.run_id)


@pipeline(enable_cache=False)
def inherited_run_variables() -> None:
    user_nested_run()


def test_inherited_run_variables_do_not_reach_the_step_and_are_restored(
    zenml_stack, embedded_client, monkeypatch
):
    platform = {
        "MLFLOW_RUN_ID": "azureml-run-0001",
        "MLFLOW_EXPERIMENT_ID": "azureml-experiment",
        "MLFLOW_EXPERIMENT_NAME": "azureml",
    }
    for name, value in platform.items():
        monkeypatch.setenv(name, value)
    run = Client().get_pipeline_run(inherited_run_variables().id)
    assert run.status == ExecutionStatus.COMPLETED
    step = run.steps["user_nested_run"]
    child = embedded_client.get_run(step.outputs["output"][0].load())
    assert child.data.tags["mlflow.parentRunId"] == step.run_metadata["mlflow_run_id"]
    assert child.data.metrics["inner"] == 1.0
    assert {name: os.environ.get(name) for name in platform} == platform


@step(experiment_tracker=TRACKER)
def autolog_on() -> int:
    from sklearn.linear_model import LogisticRegression

    mlflow.sklearn.autolog()
    LogisticRegression().fit(X, Y)
    return 1


@step(experiment_tracker=TRACKER)
def fit_after(value: int) -> int:
    from sklearn.linear_model import LogisticRegression

    LogisticRegression().fit(X, Y)
    return value


@pipeline(enable_cache=False, settings={"experiment_tracker": {"nested": True}})
def autolog_leak() -> None:
    fit_after(autolog_on())


def test_autologging_a_step_turns_on_is_off_in_the_next_step(zenml_stack, embedded_client):
    from mlflow.utils.autologging_utils import autologging_is_disabled

    assert autologging_is_disabled("sklearn")
    try:
        run = Client().get_pipeline_run(autolog_leak().id)
        assert run.status == ExecutionStatus.COMPLETED
        on = embedded_client.get_run(run.steps["autolog_on"].run_metadata["mlflow_run_id"])
        assert any(key.startswith("training_") for key in on.data.metrics)
        after = embedded_client.get_run(run.steps["fit_after"].run_metadata["mlflow_run_id"])
        assert not any(key.startswith("training_") for key in after.data.metrics)
        assert autologging_is_disabled("sklearn")
    finally:
        mlflow.autolog(disable=True, silent=True)  # a leak must not reach the next tests


@step(experiment_tracker=TRACKER, settings={"experiment_tracker": {"tags": {"stage": "train"}}})
def tagged() -> int:
    mlflow.log_metric("tagged", 1.0)
    return 1


@pipeline(enable_cache=False)
def step_tags() -> None:
    tagged()


def test_step_tags_land_on_the_parent_in_unified_mode(zenml_stack, embedded_client):
    run = Client().get_pipeline_run(step_tags().id)
    assert run.status == ExecutionStatus.COMPLETED
    step = run.steps["tagged"]
    assert step.run_metadata["mlflow_run_id"] == step.run_metadata["mlflow_parent_run_id"]
    parent = embedded_client.get_run(step.run_metadata["mlflow_parent_run_id"])
    assert parent.data.tags["stage"] == "train"
