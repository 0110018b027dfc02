"""The scenarios against real servers: no auth, basic auth, bearer token, TLS, Databricks."""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from urllib3.exceptions import InsecureRequestWarning
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.enums import StackComponentType

from tests.integration.scenarios.conftest import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    environment_watch,
)
from tests.integration.scenarios.pipelines import (
    credentials_in_memory,
    metrics_only,
    scenario,
    scenario_with_model,
)
from tests.integration.test_dynamic import wait_for_status
from tests.integration.test_run_model import runs_of
from testsupport.proxy import Proxy
from tracker_flavor.cli.main import cli

pytestmark = pytest.mark.integration


@contextmanager
def as_user(user: str, password: str):
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user, password
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")


def step_failure(caplog, pipeline_name: str = "scenario") -> str:
    """Return what ZenML logged about the failed step of the pipeline's last run, tracebacks too."""
    assert Client().get_pipeline(pipeline_name).last_run.status == "failed"
    text = []
    for record in caplog.records:
        text.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            text.append(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
    caplog.clear()
    return "\n".join(text)


def child_environments(run) -> list[str]:
    """Return what `env` printed in each mapped step of a `credentials_in_memory` run."""
    return [step.output.load() for name, step in run.steps.items() if "from_memory" in name]


def thread_tags(children) -> list[str]:
    """Return the tags the mapped steps' own threads set on their child runs."""
    return sorted(c.data.tags["from_a_thread"] for n, c in children.items() if "from_memory" in n)


def test_server_without_auth_with_proxied_artifacts_and_models(
    servers, tracker_stack, tmp_path, monkeypatch
):
    tracker_stack("plus_plain", tracking_uri=servers.plain.url)
    run = Client().get_pipeline_run(scenario_with_model().id)
    client = MlflowClient(servers.plain.url)
    (parent,), _ = runs_of(client, run.id)
    assert parent.info.status == "FINISHED"
    assert len(client.get_metric_history(parent.info.run_id, "m")) == 5
    # The step's own file, and its outputs (sent before the pipeline returned).
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["notes.txt", "zenml"]
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server
    (model,) = client.search_logged_models([parent.info.experiment_id])
    assert model.source_run_id == parent.info.run_id and model.name == "model"
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(model.model_id)}
    link = str(run.steps["log_things"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    exp, run_id = parent.info.experiment_id, parent.info.run_id
    assert (
        link
        == f"{servers.plain.url}/#/experiments/{exp}/runs/{run_id}?workflowType=machine_learning"
    )
    open_prints_and_launches_the_links(run, link, tmp_path, monkeypatch)


def open_prints_and_launches_the_links(run, step_link: str, tmp_path: Path, monkeypatch) -> None:
    """`zenml-mlflow open`: a step's link opened in a browser, the run's printed, wrong names."""
    opener = tmp_path / "bin" / "xdg-open"  # what click.launch starts on Linux
    opener.parent.mkdir()
    opener.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path / "opened"}\n')
    opener.chmod(0o755)
    monkeypatch.setenv("PATH", f"{opener.parent}{os.pathsep}{os.environ['PATH']}")
    runner = CliRunner()
    step = runner.invoke(cli, ["open", run.name, "log_things", "--browser"])
    assert step.exit_code == 0, step.output
    assert step.stdout == f"{step_link}\n" and step.stderr == ""
    assert (tmp_path / "opened").read_text() == f"{step_link}\n"
    parent = runner.invoke(cli, ["open", str(run.id)])
    assert parent.exit_code == 0, parent.output
    assert parent.stdout == f"{run.run_metadata[METADATA_EXPERIMENT_TRACKER_URL]}\n"
    assert (tmp_path / "opened").read_text() == f"{step_link}\n"  # without --browser: printed
    no_step = runner.invoke(cli, ["open", run.name, "nope"])
    assert no_step.exit_code == 1
    assert no_step.stderr == (
        f"Error: pipeline run {run.name!r} has no step 'nope'; its steps: log_model, log_things.\n"
    )
    no_run = runner.invoke(cli, ["open", "no-such-run"])
    assert no_run.exit_code == 1
    assert no_run.stderr == (
        "Error: no pipeline run named 'no-such-run': `zenml-mlflow runs` lists the recent ones.\n"
    )


def test_basic_auth_from_a_secret_leaks_nowhere_and_rotates(servers, tracker_stack, capfd, caplog):
    client = Client()
    client.create_secret("mlflow_auth", values={"username": "alice", "password": ALICE_PASSWORD})
    try:
        tracker_stack(
            "plus_auth",
            tracking_uri=servers.auth.url,
            tracking_username="{{mlflow_auth.username}}",
            tracking_password="{{mlflow_auth.password}}",
        )
        with environment_watch(ALICE_PASSWORD) as leaked:
            run = Client().get_pipeline_run(scenario().id)
            mapped = Client().get_pipeline_run(credentials_in_memory().id)
        # Not in os.environ at any moment, so not in what the steps' child processes saw; yet
        # the steps, a thread of their own and their own MlflowClient() authenticated.
        assert leaked == set()
        child_envs = child_environments(mapped)
        assert len(child_envs) == 3
        assert all("MLFLOW_TRACKING_AUTH=mlflow_plus" in env for env in child_envs)
        with as_user("admin", ADMIN_PASSWORD):
            admin = MlflowClient(servers.auth.url)
            (parent,), _ = runs_of(admin, run.id)
            (mapped_parent,), children = runs_of(admin, mapped.id)
            assert wait_for_status(admin, mapped_parent.info.run_id, "FINISHED") == "FINISHED"
        assert thread_tags(children) == ["0", "1", "2"]
        assert parent.info.status == "FINISHED" and parent.data.params == {
            "p": "v",
            "log_things.points": "5",
            "points": "5",  # the pipeline's parameter
        }

        stored = client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "plus_auth")
        describe = subprocess.run(
            [str(Path(sys.executable).parent / "zenml"), "experiment-tracker", "describe", "plus_auth"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        places = {
            "stored config": json.dumps(stored.configuration),
            "zenml describe": describe.stdout + describe.stderr,
            "step metadata": json.dumps({k: str(v) for k, v in run.steps["log_things"].run_metadata.items()}),
            "pipeline metadata": json.dumps({k: str(v) for k, v in run.run_metadata.items()}),
            "mlflow tags and params": json.dumps([parent.data.tags, parent.data.params]),
            "environment": json.dumps(dict(os.environ)),
            "child processes": "".join(child_envs),
            "logs": "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records),
        }  # fmt: skip
        assert "{{mlflow_auth.password}}" in places["stored config"]
        assert [place for place, text in places.items() if ALICE_PASSWORD in text] == []

        # Rotation: a wrong password in the secret fails the next step fast, with the fix.
        client.update_secret("mlflow_auth", add_or_update_values={"password": "wrong"})
        started = time.monotonic()
        with pytest.raises(RuntimeError):
            scenario()
        assert time.monotonic() - started < 60
        assert (
            f"Failed to run step `log_things`: authentication to {servers.auth.url} failed (HTTP 401): "
            "check tracking_username/tracking_password from the ZenML secret 'mlflow_auth'."
            in step_failure(caplog)
        )
        client.update_secret("mlflow_auth", add_or_update_values={"password": ALICE_PASSWORD})
        assert scenario().status == "completed"  # no re-registration needed
    finally:
        client.delete_secret("mlflow_auth")


def test_three_trackers_in_one_process_keep_their_credentials_out_of_env_and_output(
    servers, tracker_stack, monkeypatch, capfd, caplog
):
    """A secret's credentials, refused ones and MLFLOW_TRACKING_URI's, one tracker after another."""
    client = Client()
    client.create_secret("mlflow_three", values={"username": "alice", "password": ALICE_PASSWORD})
    wrong_config, wrong_uri = "wrong-in-the-config", "wrong-in-the-uri"
    host = servers.auth.url.removeprefix("http://")
    # The user's own variable, there before the tracker (the watch reports only what is new).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{ALICE_PASSWORD}@{host}")
    try:
        with environment_watch(ALICE_PASSWORD, wrong_config) as leaked:
            tracker_stack(
                "plus_three_secret",
                tracking_uri=servers.auth.url,
                tracking_username="{{mlflow_three.username}}",
                tracking_password="{{mlflow_three.password}}",
            )
            assert scenario().status == "completed"
            tracker_stack(
                "plus_three_refused", tracking_uri=servers.auth.url,
                tracking_username="alice", tracking_password=wrong_config,
            )  # fmt: skip
            with pytest.raises(RuntimeError):
                scenario()
            refused = step_failure(caplog)
            tracker_stack("plus_three_uri")  # no tracking_uri: MLFLOW_TRACKING_URI's
            from_uri = Client().get_pipeline_run(credentials_in_memory(count=1).id)
        assert leaked == set()
        (child_env,) = child_environments(from_uri)
        assert f"MLFLOW_TRACKING_URI={servers.auth.url}\n" in child_env
        with as_user("admin", ADMIN_PASSWORD):
            admin = MlflowClient(servers.auth.url)
            (parent,), children = runs_of(admin, from_uri.id)
            assert thread_tags(children) == ["0"]
            # The watcher settles with the URI's credentials too.
            assert wait_for_status(admin, parent.info.run_id, "FINISHED") == "FINISHED"
        assert (
            f"authentication to {servers.auth.url} failed (HTTP 401): check "
            "tracking_username/tracking_password in the tracker's config." in refused
        )
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{wrong_uri}@{host}")
        with pytest.raises(RuntimeError):
            scenario()
        assert (
            f"authentication to {servers.auth.url} failed (HTTP 401): check "
            "the user:password in MLFLOW_TRACKING_URI." in step_failure(caplog)
        )
        output = "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records)
        assert [
            s for s in (ALICE_PASSWORD, wrong_config, wrong_uri, child_env) if s in output
        ] == []
    finally:
        client.delete_secret("mlflow_three")


def test_a_missing_secret_names_the_secret_and_the_field(
    servers, tracker_stack, monkeypatch, caplog
):
    tracker_stack(
        "plus_nosecret", tracking_uri=servers.plain.url, tracking_token="{{no_such_secret.token}}"
    )
    # ZenML itself refuses to submit the run, naming the secret.
    with pytest.raises(Exception, match="no_such_secret.token"):
        scenario()
    # When the secret disappears after submission (a remote orchestrator starts the step later),
    # the step fails at its start, naming the secret and the field.
    monkeypatch.setenv("ZENML_SECRET_VALIDATION_LEVEL", "NONE")
    with pytest.raises(RuntimeError):
        scenario()
    message = step_failure(caplog)
    assert (
        "SecretReferenceError: tracking_token refers to the ZenML secret 'no_such_secret', key 'token'"
        in message
    )
    assert "zenml secret create no_such_secret" in message


def test_bearer_token_behind_a_gateway(servers, tracker_stack):
    with Proxy(servers.plain.url, token="tok-123") as gateway:
        tracker_stack("plus_token", tracking_uri=gateway.url, tracking_token="tok-123")
        with environment_watch("tok-123") as leaked:
            run = Client().get_pipeline_run(credentials_in_memory().id)
        assert run.status == "completed"
        assert leaked == set()
        assert "tok-123" not in "".join(child_environments(run))
        assert gateway.rejected == 0 and gateway.total > 0
        client = MlflowClient(servers.plain.url)
        (parent,), children = runs_of(client, run.id)
        assert thread_tags(children) == ["0", "1", "2"]
        assert wait_for_status(client, parent.info.run_id, "FINISHED") == "FINISHED"


def test_tls_verification_bundle_and_insecure_mode(servers, tracker_stack, caplog, recwarn):
    url = servers.tls.url
    tracker_stack("plus_tls_default", tracking_uri=url)
    with pytest.raises(RuntimeError):
        scenario()
    message = step_failure(caplog)
    assert f"Failed to run step `log_things`: TLS verification of {url} failed" in message
    assert "tracking_ca_bundle" in message and "tracking_insecure_tls" in message

    tracker_stack("plus_tls_bundle", tracking_uri=url, tracking_ca_bundle=str(servers.certificate))
    assert scenario().status == "completed"

    tracker_stack("plus_tls_insecure", tracking_uri=url, tracking_insecure_tls=True)
    recwarn.clear()
    with caplog.at_level("WARNING"):
        assert scenario().status == "completed"
        assert scenario().status == "completed"
    warnings = [
        r for r in caplog.records if "verification" in r.getMessage() and "off" in r.getMessage()
    ]
    assert len(warnings) == 1
    # ... and not urllib3's own for every request.
    assert [w for w in recwarn if issubclass(w.category, InsecureRequestWarning)] == []


def test_databricks_speaks_to_a_local_server(servers, tracker_stack):
    host = servers.plain.url
    tracker_stack("plus_databricks", tracking_uri="databricks", databricks_host=host + "/",
                  tracking_token="dapi-dummy")  # fmt: skip
    run = Client().get_pipeline_run(metrics_only(points=3).id)
    client = MlflowClient(host)
    experiment = client.get_experiment_by_name("/Shared/metrics_only")
    assert experiment is not None
    (parent,), _ = runs_of(client, run.id)
    assert parent.info.experiment_id == experiment.experiment_id
    assert len(client.get_metric_history(parent.info.run_id, "m")) == 3
    link = str(run.steps["log_metrics"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    assert link == f"{host}/ml/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
    assert "DATABRICKS_TOKEN" not in os.environ and "DATABRICKS_HOST" not in os.environ
