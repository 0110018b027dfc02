"""The finalizer settles a dynamic pipeline's parent without touching the process environment."""

import os
import time

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.scenarios.conftest import ALICE_PASSWORD
from tests.integration.scenarios.pipelines import dynamic_metrics
from tests.integration.scenarios.test_servers import as_user
from tests.integration.test_dynamic import wait_for_status
from tests.integration.test_run_model import runs_of
from tracker_flavor.environment import process_environment

pytestmark = pytest.mark.integration


def watch_environment(seconds: float) -> set[str]:
    """Sample the MLflow credential variables of the process in a tight loop."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= {
            name
            for name in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")
            if name in os.environ
        }
    return seen


def test_no_credential_enters_the_environment_after_a_dynamic_pipeline(servers, tracker_stack):
    client = Client()
    client.create_secret("mlflow_final", values={"username": "alice", "password": ALICE_PASSWORD})
    try:
        tracker_stack(
            "plus_final", tracking_uri=servers.auth.url,
            tracking_username="{{mlflow_final.username}}",
            tracking_password="{{mlflow_final.password}}",
        )  # fmt: skip
        run = dynamic_metrics()
        assert watch_environment(2.0) == set()
        with as_user("alice", ALICE_PASSWORD):
            mlflow = MlflowClient(servers.auth.url)
            (parent,), _ = runs_of(mlflow, run.id)
            assert wait_for_status(mlflow, parent.info.run_id, "FINISHED") == "FINISHED"
    finally:
        client.delete_secret("mlflow_final")


def test_the_finalizer_settles_while_another_tracking_uri_is_active(
    servers, tracker_stack, session_dir
):
    tracker_stack("plus_final_plain", tracking_uri=servers.plain.url)
    run = dynamic_metrics()
    # A step of another tracker starts in this process before the finalizer settles the run.
    process_environment.enter(f"sqlite:///{session_dir}/other.db", {})
    try:
        mlflow = MlflowClient(servers.plain.url)
        (parent,), _ = runs_of(mlflow, run.id)
        assert wait_for_status(mlflow, parent.info.run_id, "FINISHED") == "FINISHED"
    finally:
        process_environment.leave()
