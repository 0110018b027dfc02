"""`zenml-mlflow push`: the embedded store's runs copied to a real server exactly once."""

import json
import urllib.request

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.entities import ViewType
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.scenarios.conftest import ALICE_PASSWORD
from tests.integration.scenarios.pipelines import scenario
from testsupport.proxy import FAIL, Proxy
from tracker_flavor.cli.main import cli
from tracker_flavor.mlflow.embedded import embedded_artifact_location
from tracker_flavor.runs import metadata, tags

pytestmark = pytest.mark.integration

EXPERIMENT = "push-sweep"
CREDENTIALS = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": ALICE_PASSWORD}
"""Sent to the server without authentication (which ignores them): they must show nowhere."""


def push(uri: str):
    return CliRunner().invoke(cli, ["push", "--to", uri, "-e", EXPERIMENT], env=CREDENTIALS)


def state(client: MlflowClient, experiment_id: str) -> dict:
    """Everything a push could change on the server: runs, tags, params, metric histories."""
    runs = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    return {
        run.info.run_id: (
            run.info,
            run.data.tags,
            run.data.params,
            {key: client.get_metric_history(run.info.run_id, key) for key in run.data.metrics},
            [a.path for a in client.list_artifacts(run.info.run_id)],
        )
        for run in runs
    }


def test_push_copies_runs_once_resumes_an_interrupted_push_and_relinks_zenml(
    servers, zenml_stack, embedded_client
):
    # In the embedded store: a sweep run with a metric history, and under it a nested pipeline
    # run (parent, step child with a metric history, a param and an artifact).
    artifacts = embedded_artifact_location(Client().active_stack.artifact_store.path)
    sweep = embedded_client.create_run(
        embedded_client.create_experiment(EXPERIMENT, artifact_location=artifacts), run_name="sweep"
    )
    sweep_id = sweep.info.run_id
    for i in range(3):
        embedded_client.log_metric(sweep_id, "best", 1.0 - i / 10, step=i)
    settings = {"experiment_tracker": {"nested": True, "parent_run_id": sweep_id}}
    run = Client().get_pipeline_run(scenario.with_options(settings=settings)().id)
    embedded_client.set_terminated(sweep_id)
    local = {r.info.run_name: r for r in embedded_client.search_runs([sweep.info.experiment_id])}
    assert set(local) == {"sweep", run.name, "log_things"}

    server = MlflowClient(servers.plain.url)

    # A push that fails midway (every run end refused): the sweep's copy is begun, not complete.
    with Proxy(servers.plain.url) as proxy:
        proxy.inject(FAIL, count=100, path="/api/2.0/mlflow/runs/update")
        interrupted = push(proxy.url)
    assert interrupted.exit_code == 1, interrupted.output
    assert "Run the same push again: it completes what this one began." in interrupted.output
    exp = server.get_experiment_by_name(EXPERIMENT).experiment_id
    (begun,) = server.search_runs([exp])
    assert begun.data.tags[tags.PUSH_SOURCE] == sweep_id
    assert tags.PUSH_COMPLETE not in begun.data.tags

    # The next push completes it, without a second copy or a duplicated point, and the rest.
    done = push(servers.plain.url)
    assert done.exit_code == 0, done.output
    assert "2 run(s) copied, 1 completed, 0 already there" in done.output
    copies = {r.data.tags[tags.PUSH_SOURCE]: r for r in server.search_runs([exp])}
    assert set(copies) == {r.info.run_id for r in local.values()}
    for name, source in local.items():
        copy = copies[source.info.run_id]
        assert copy.data.tags[tags.PUSH_COMPLETE] == "true", name
        assert (copy.info.run_name, copy.info.status) == (name, source.info.status)
        assert (copy.info.start_time, copy.info.end_time) == (
            source.info.start_time, source.info.end_time,
        )  # fmt: skip
        assert copy.data.params == source.data.params
        for key in source.data.metrics:
            history = server.get_metric_history(copy.info.run_id, key)
            expected = embedded_client.get_metric_history(source.info.run_id, key)
            assert [(m.step, m.timestamp, m.value) for m in history] == [
                (m.step, m.timestamp, m.value) for m in expected
            ], (name, key)
        shared = set(source.data.tags) - {"mlflow.parentRunId"}
        assert {k: copy.data.tags[k] for k in shared} == {k: source.data.tags[k] for k in shared}
    parent, child = copies[local[run.name].info.run_id], copies[local["log_things"].info.run_id]
    assert parent.data.tags["mlflow.parentRunId"] == copies[sweep_id].info.run_id
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert len(server.get_metric_history(child.info.run_id, "m")) == 5
    assert len(server.get_metric_history(copies[sweep_id].info.run_id, "best")) == 3
    notes = server.download_artifacts(child.info.run_id, "notes.txt")
    assert open(notes).read() == "proxied artifact"

    # ZenML's links now point at the copies on the server, and they open.
    run = Client().get_pipeline_run(run.id)
    step = run.steps["log_things"].run_metadata
    assert run.run_metadata[metadata.PARENT_RUN_ID_KEY] == parent.info.run_id
    assert step[metadata.RUN_ID_KEY] == child.info.run_id
    assert step[metadata.TRACKING_URI_KEY] == servers.plain.url
    assert str(step[METADATA_EXPERIMENT_TRACKER_URL]).startswith(
        f"{servers.plain.url}/#/experiments/{exp}/runs/{child.info.run_id}"
    )
    api = f"{servers.plain.url}/api/2.0/mlflow/runs/get?run_id={step[metadata.RUN_ID_KEY]}"
    with urllib.request.urlopen(api, timeout=60) as response:
        assert json.load(response)["run"]["info"]["run_name"] == "log_things"
    assert (
        f"zenml experiment-tracker update mlflow_plus --tracking_uri={servers.plain.url} "
        "'--tracking_username={{mlflow_server.username}}' "
        "'--tracking_password={{mlflow_server.password}}'" in done.output
    )
    assert ALICE_PASSWORD not in interrupted.output + done.output

    # Pushing again changes nothing, on the server or in ZenML.
    before = state(server, exp)
    again = push(servers.plain.url)
    assert again.exit_code == 0, again.output
    assert "0 run(s) copied, 0 completed, 3 already there" in again.output
    assert "0 ZenML run/step link(s) updated" in again.output
    assert state(server, exp) == before
