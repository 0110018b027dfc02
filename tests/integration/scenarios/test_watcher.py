"""The watcher settles a dynamic pipeline's parent without touching the process environment."""

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
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.integration


def watch_environment(seconds: float, *names: str) -> set[str]:
    """Sample credential variables of the process in a tight loop; return those that appeared."""
    names = names or ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME")
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen |= {name for name in names if name in os.environ}
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


def test_the_watcher_settles_while_another_tracking_uri_is_active(
    servers, tracker_stack, session_dir
):
    tracker_stack("plus_final_plain", tracking_uri=servers.plain.url)
    run = dynamic_metrics()
    # A step of another tracker starts in this process before the watcher settles the run.
    other = Connection(f"sqlite:///{session_dir}/other.db")
    runtime.mlflow.environment.enter(other)
    try:
        mlflow = MlflowClient(servers.plain.url)
        (parent,), _ = runs_of(mlflow, run.id)
        assert wait_for_status(mlflow, parent.info.run_id, "FINISHED") == "FINISHED"
    finally:
        runtime.mlflow.environment.leave(other)


def test_the_watcher_reaches_databricks_with_its_own_credentials(servers, tracker_stack):
    from testsupport.proxy import Proxy

    # The gateway stands in for the workspace: it wants the token on every request.
    with Proxy(servers.plain.url, token="dapi-final") as workspace:
        tracker_stack(
            "plus_final_databricks", tracking_uri="databricks", databricks_host=workspace.url,
            tracking_token="dapi-final",
        )  # fmt: skip
        run = dynamic_metrics()
        assert watch_environment(1.0, "DATABRICKS_TOKEN", "DATABRICKS_HOST") == set()
        mlflow = MlflowClient(servers.plain.url)
        (parent,), _ = runs_of(mlflow, run.id)
        # Settled through the gateway, which refuses requests without the token (it also
        # counts the Databricks SDK's unauthenticated /.well-known probes of the steps).
        assert wait_for_status(mlflow, parent.info.run_id, "FINISHED") == "FINISHED"
        assert workspace.requests["/api/2.0/mlflow/runs/update"] >= 1
