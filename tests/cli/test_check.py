"""`zenml-mlflow check` without a server: refused, hanging, missing secret, embedded store."""

import json
import socket
import time

import pytest
from click.testing import CliRunner

from tests.cli.conftest import tracker, zenml_mlflow
from testsupport.servers import free_port
from tracker_flavor.cli.main import cli

pytestmark = pytest.mark.integration


def test_check_of_a_stopped_server_fails_fast_with_the_fix(zenml_stack):
    name = tracker("check_down", tracking_uri=f"http://127.0.0.1:{free_port()}")
    down = zenml_mlflow("check", name, "-o", "json")
    assert down.returncode == 1
    assert down.stderr == f"Error: experiment tracker '{name}' is not usable.\n"
    report = json.loads(down.stdout)
    assert report["usable"] is False
    assert [c["name"] for c in report["checks"]] == ["secrets", "connect"]
    assert "connection refused" in report["checks"][-1]["message"]
    assert "zenml-mlflow server start" in report["checks"][-1]["message"]


def test_check_of_a_server_that_never_answers_ends_at_its_timeout(zenml_stack):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections in the kernel, never answers
        name = tracker("check_silent", tracking_uri=f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        result = CliRunner().invoke(cli, ["check", name, "--timeout", "3"])
        elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert elapsed < 6, elapsed
    assert "✓ connect" in result.output
    last = result.output.strip().splitlines()[-2]
    assert last.startswith("✗ server: ")
    assert "did not answer" in last or "no answer within --timeout 3 s" in last


def test_check_names_a_missing_secret(zenml_stack):
    name = tracker(
        "check_nosecret",
        tracking_uri="http://127.0.0.1:5001",
        tracking_token="{{no_such_secret.token}}",
    )
    result = CliRunner().invoke(cli, ["check", name])
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith("✗ secrets: tracking_token refers to the ZenML secret 'no_such_secret'")
    assert "zenml secret create no_such_secret --token=..." in first


def test_check_probes_the_embedded_store_of_the_active_stack(zenml_stack, embedded_client):
    from mlflow.entities import ViewType

    for _ in range(2):
        result = CliRunner().invoke(cli, ["check"])
        assert result.exit_code == 0, result.output
        assert [line.split(":")[0] for line in result.output.splitlines()] == [
            "✓ secrets", "✓ auth", "✓ probe", "experiment tracker 'mlflow_plus' is usable."
        ]  # fmt: skip
        assert (
            "logged to run 'probe' of experiment 'zenml-mlflow-check', kept for the next check "
            "and hidden from the experiment list" in result.output
        )
    # Two checks leave one run, reused; its experiment is out of the UI's (active) list.
    assert "zenml-mlflow-check" not in {e.name for e in embedded_client.search_experiments()}
    experiments = embedded_client.search_experiments(view_type=ViewType.ALL)
    (experiment,) = [e for e in experiments if e.name == "zenml-mlflow-check"]
    assert experiment.lifecycle_stage == "deleted"
    (run,) = embedded_client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    assert (run.info.run_name, run.info.status, run.info.lifecycle_stage) == (
        "probe", "FINISHED", "deleted"  # with its experiment, until the next check restores both
    )  # fmt: skip
    assert len(embedded_client.get_metric_history(run.info.run_id, "probe")) == 2


def test_check_of_an_unknown_tracker_says_so(zenml_stack):
    result = CliRunner().invoke(cli, ["check", "no_such_tracker"])
    assert result.exit_code == 1
    assert result.output == "Error: no experiment tracker named 'no_such_tracker'.\n"
