"""A `file:` tracking URI (documented by ZenML) works on MLflow 3, for steps and the built-in API."""

import os

import mlflow
import pytest
from mlflow import MlflowClient
from zenml import pipeline, step
from zenml.client import Client
from zenml.enums import ExecutionStatus

pytestmark = pytest.mark.integration


@step(experiment_tracker="file_store")
def log_to_file_store() -> None:
    mlflow.log_metric("logged", 1.0)


@pipeline(enable_cache=False)
def file_store_pipeline() -> None:
    log_to_file_store()


def test_a_file_store_takes_runs_and_answers_the_builtin_api(
    tracker_stack, tmp_path, isolated_mlflow_environment
):
    store = f"file://{tmp_path}/mlruns"
    tracker_stack("file_store", tracking_uri=store)
    run = Client().get_pipeline_run(file_store_pipeline().id)
    assert run.status == ExecutionStatus.COMPLETED
    parent_id = run.run_metadata["mlflow_parent_run_id"]
    assert run.steps["log_to_file_store"].run_metadata["mlflow_tracking_uri"] == store
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed for the step only

    tracker = Client().active_stack.experiment_tracker
    assert tracker.local_path == f"//{tmp_path}/mlruns"  # the built-in's: the URI after `file:`
    assert tracker.get_run_id("file_store_pipeline", run.name) == parent_id
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # configure_mlflow: for the process
    assert MlflowClient(tracking_uri=store).get_run(parent_id).data.metrics["logged"] == 1.0
