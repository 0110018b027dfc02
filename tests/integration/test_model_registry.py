"""ZenML's MLflow model registry, register-model step and model deployer on an mlflow_plus tracker."""

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import pytest
from sklearn.linear_model import LogisticRegression
from zenml import pipeline, step
from zenml.client import Client
from zenml.enums import ExecutionStatus, StackComponentType
from zenml.integrations.mlflow import mlflow_utils
from zenml.integrations.mlflow.steps.mlflow_deployer import mlflow_model_deployer_step
from zenml.integrations.mlflow.steps.mlflow_registry import mlflow_register_model_step

from tests.integration.conftest import TRACKER
from tracker_flavor.mlflow.internals import has_logged_models

pytestmark = pytest.mark.integration

REGISTRY = "plus_models"
DEPLOYER = "plus_deployer"
X = [[0.0], [1.0], [2.0], [3.0]]
Y = [0, 0, 1, 1]


@step(experiment_tracker=TRACKER)
def train() -> Annotated[LogisticRegression, "model"]:
    model = LogisticRegression().fit(X, Y)
    mlflow.sklearn.log_model(model, name="model")
    return model


@pipeline(enable_cache=False)
def train_and_register() -> None:
    mlflow_register_model_step(train(), name="plus_model")


@pipeline(enable_cache=False)
def train_and_deploy() -> None:
    mlflow_model_deployer_step(train(), model_name="model", timeout=120)


@pytest.fixture
def registry_stack(zenml_stack: str, isolated_mlflow_environment: None) -> Iterator[str]:
    """Activate a stack of the session tracker, an mlflow_plus registry and an mlflow deployer."""
    client = Client()
    registry = client.create_stack_component(
        REGISTRY, "mlflow_plus", StackComponentType.MODEL_REGISTRY, {}
    )
    deployer = client.create_stack_component(
        DEPLOYER, "mlflow", StackComponentType.MODEL_DEPLOYER, {}
    )
    base = client.get_stack(zenml_stack)
    components = {kind: [models[0].id] for kind, models in base.components.items()}
    components[StackComponentType.MODEL_REGISTRY] = [registry.id]
    components[StackComponentType.MODEL_DEPLOYER] = [deployer.id]
    client.create_stack("registry_stack", components=components)
    client.activate_stack("registry_stack")
    try:
        yield "registry_stack"
    finally:
        client.activate_stack(zenml_stack)
        client.delete_stack("registry_stack")
        client.delete_stack_component(REGISTRY, StackComponentType.MODEL_REGISTRY)
        client.delete_stack_component(DEPLOYER, StackComponentType.MODEL_DEPLOYER)


def test_zenml_mlflow_helpers_accept_the_tracker(registry_stack):
    tracker = Client().active_stack.experiment_tracker
    assert mlflow_utils.get_tracking_uri() == tracker.get_tracking_uri()
    assert tracker.get_tracking_uri().startswith("sqlite:///")
    Client().active_stack.validate()  # the registry's validator takes the mlflow_plus tracker


def test_register_model_step_registers_a_version_that_loads(
    registry_stack, embedded_client, tmp_path
):
    run = Client().get_pipeline_run(train_and_register().id)
    assert run.status == ExecutionStatus.COMPLETED
    parent_id = run.run_metadata["mlflow_parent_run_id"]
    [version] = embedded_client.search_model_versions("name = 'plus_model'")
    assert version.run_id == parent_id
    if has_logged_models():  # MLflow 3 keeps the step's model as a LoggedModel, not in the run
        (output,) = embedded_client.get_run(parent_id).outputs.model_outputs
        assert version.source == f"models:/{output.model_id}"
    else:
        assert version.source == f"runs:/{parent_id}/model"
    registry = Client().active_stack.model_registry
    assert registry.get_model_version("plus_model", version.version).model_source_uri == (
        version.source
    )
    local = mlflow.artifacts.download_artifacts(
        embedded_client.get_model_version_download_uri("plus_model", version.version),
        dst_path=str(tmp_path),
        tracking_uri=embedded_client.tracking_uri,
    )
    assert list(mlflow.pyfunc.load_model(local).predict([[0.0], [3.0]])) == [0, 1]


def test_deployer_step_serves_the_model_of_the_parent_run(registry_stack):
    # The model server runs `uvicorn` from PATH, as in an activated virtual environment.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    run = Client().get_pipeline_run(train_and_deploy().id)
    assert run.status == ExecutionStatus.COMPLETED
    from zenml.integrations.mlflow.model_deployers import MLFlowModelDeployer

    deployer = MLFlowModelDeployer.get_active_model_deployer()
    [service] = deployer.find_model_server(pipeline_name="train_and_deploy")
    try:
        assert service.is_running
        assert service.config.model_uri == f"runs:/{run.run_metadata['mlflow_parent_run_id']}/model"
        request = urllib.request.Request(
            service.prediction_url,
            data=json.dumps({"inputs": [[0.0], [3.0]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["predictions"] == [0, 1]
    finally:
        service.stop(timeout=60, force=True)
        deployer.delete_model_server(service.uuid, force=True)
