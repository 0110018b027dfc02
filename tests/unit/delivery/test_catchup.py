"""Delivering a spool: a parent spooled under a `parent_run_id` run goes where online it would."""

import pytest
from mlflow import MlflowClient

from tests.unit.runs.test_parent import Records, fresh_state
from tracker_flavor.delivery import catchup
from tracker_flavor.mlflow.connection import Connection

pytestmark = pytest.mark.unit


def test_a_spooled_parent_under_a_parent_run_id_goes_into_that_runs_experiment(sqlite_uri):
    client = MlflowClient(sqlite_uri)
    sweep = client.create_run(client.create_experiment("team"), run_name="sweep").info
    operation = {
        "kind": "parent", "pipeline_run_id": "z1", "experiment": "pipeline", "name": "nightly",
        "tags": {"zenml.pipeline_run_id": "z1", "mlflow.parentRunId": sweep.run_id},
    }  # fmt: skip
    records = Records()
    parent = catchup._run(client, Connection(sqlite_uri), operation, {}, records, fresh_state())
    assert parent.experiment_id == sweep.experiment_id and records.written == [parent]
    assert client.get_run(parent.run_id).data.tags["mlflow.parentRunId"] == sweep.run_id
    assert client.get_experiment_by_name("pipeline") is None
