"""Arguments, help and output of the commands through click's runner, with no server or store."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from tracker_flavor.cli.main import cli
from tracker_flavor.cli.reference import render, walk
from tracker_flavor.cli.ui import links_address

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_generated_from_the_commands():
    assert (ROOT / "docs" / "cli.md").read_text() == render(cli), (
        "docs/cli.md is stale: run `.venv/bin/python -m tracker_flavor.cli.reference > docs/cli.md`"
    )


@pytest.mark.parametrize("path", [path for path, _ in walk(cli, "zenml-mlflow")][1:])
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
    assert result.exit_code == 0
    assert "Example: zenml-mlflow " in result.output


def test_every_command_that_prints_data_takes_output_json():
    takes_output = {
        path for path, command in walk(cli, "zenml-mlflow")
        if any(param.name == "output" for param in command.params)
    }  # fmt: skip
    assert takes_output == {
        "zenml-mlflow check",
        "zenml-mlflow migrate",
        "zenml-mlflow runs",
        "zenml-mlflow server status",
    }


def test_server_start_command_for_a_team_database_with_basic_auth(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["server", "start", "--data-dir", str(tmp_path), "--backend-store-uri",
         "postgresql://mlflow:pw@db/mlflow", "--basic-auth", "--print-command"],
    )  # fmt: skip
    assert result.exit_code == 0
    command = result.output.split()
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert command[command.index("--backend-store-uri") + 1] == "postgresql://mlflow:pw@db/mlflow"
    assert command[command.index("--artifacts-destination") + 1] == str(tmp_path / "artifacts")
    assert command[command.index("--port") + 1] == "5001"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert not (tmp_path / "server.pid").exists()


def test_server_start_warns_about_all_interfaces_and_without_auth(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["server", "start", "--data-dir", str(tmp_path), "--host", "0.0.0.0", "--port",
                  str(port)],
        )  # fmt: skip
    assert result.exit_code == 1
    assert "warning: --host 0.0.0.0 makes the server reachable from every network" in result.output
    assert "without authentication (--basic-auth)" in result.output
    assert result.output.endswith(f"Error: port {port} on 0.0.0.0 is already in use by another "
                                  "process: choose another --port.\n")  # fmt: skip


def test_server_commands_on_a_fresh_data_dir(tmp_path):
    runner = CliRunner()
    stop = runner.invoke(cli, ["server", "stop", "--data-dir", str(tmp_path)])
    assert stop.exit_code == 0 and "no MLflow server was started from" in stop.output
    status = runner.invoke(cli, ["server", "status", "--data-dir", str(tmp_path), "-o", "json"])
    assert status.exit_code == 1 and '"running": false' in status.output
    assert status.output.endswith(
        f"Error: the MLflow server of {tmp_path.resolve()} was never started: start it with "
        "`zenml-mlflow server start`.\n"
    )
    logs = runner.invoke(cli, ["server", "logs", "--data-dir", str(tmp_path)])
    assert logs.exit_code == 1 and "the server was never started" in logs.output


def test_runs_needs_at_least_one_run():
    result = CliRunner().invoke(cli, ["runs", "-n", "0"])
    assert result.exit_code == 2
    assert result.output.endswith(
        "Error: Invalid value for '--last' / '-n': 0 is not in the range x>=1.\n"
    )


def test_runs_takes_at_most_three_metrics():
    result = CliRunner().invoke(cli, ["runs", "-m", "a", "-m", "b", "-m", "c", "-m", "d"])
    assert result.exit_code == 2
    assert "Invalid value for --metric: at most 3 metrics" in result.output


@pytest.mark.parametrize(
    ("ui_url", "address"),
    [
        (None, ("127.0.0.1", 5000)),
        ("http://localhost:8080", ("localhost", 8080)),
        ("https://mlflow.example.com/", ("mlflow.example.com", 443)),
    ],
)
def test_ui_serves_at_the_address_of_the_step_links(ui_url, address):
    assert links_address(ui_url) == address


def test_a_refused_value_is_reported_by_field_and_reason_only():
    from pydantic import ValidationError

    from tracker_flavor.cli.output import error_message
    from tracker_flavor.config.component import MLflowPlusConfig

    with pytest.raises(ValidationError) as fields:
        MLflowPlusConfig(max_retries=99, nested="maybe")
    assert error_message(fields.value) == (
        "nested: Input should be a valid boolean, unable to interpret input\n"
        "max_retries: Input should be less than or equal to 10"
    )
    with pytest.raises(ValidationError) as model:
        MLflowPlusConfig(tracking_uri="http://h:1", tracking_username="u")
    assert error_message(model.value) == (
        "tracking_password is missing: username/password authentication needs both "
        "tracking_username and tracking_password."
    )
    assert error_message(ValueError("plain")) == "plain"
