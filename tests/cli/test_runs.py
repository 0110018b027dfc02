"""`zenml-mlflow runs` lists real pipeline runs; `--repair` settles MLflow statuses from ZenML's."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from zenml.client import Client

from tests.integration.pipelines import failing, linear
from tracker_flavor.cli.main import cli

pytestmark = pytest.mark.integration


def runs(*args: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["runs", *args, "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def parent_of(run_id) -> str:
    return str(Client().get_pipeline_run(run_id).run_metadata["mlflow_parent_run_id"])


def test_runs_show_both_statuses_the_link_and_chosen_metrics(zenml_stack):
    run = linear(count=2)
    with pytest.raises(RuntimeError):
        failing()
    shown = runs("--last", "2", "-m", "consumed", "-m", "missing")
    failed, done = shown
    assert done["run"] == run.name and done["pipeline"] == "linear"
    assert (done["zenml_status"], done["mlflow_status"]) == ("completed", "FINISHED")
    assert done["metrics"] == {"consumed": 4.0, "missing": None}
    assert done["link"].startswith("http://127.0.0.1:5000/#/experiments/")
    assert done["link"].endswith(f"{parent_of(run.id)}?workflowType=machine_learning")
    assert (failed["zenml_status"], failed["mlflow_status"]) == ("failed", "FAILED")
    assert failed["pipeline"] == "failing" and failed["failed_step"] == "explode"

    table = CliRunner().invoke(cli, ["runs", "linear", "--last", "1", "-m", "consumed"])
    assert table.exit_code == 0
    assert run.name in table.output and "FINISHED" in table.output and "4" in table.output
    assert "failing" not in table.output


def test_repair_settles_runs_a_dead_process_left_running(zenml_stack, embedded_client):
    nested = linear.with_options(settings={"experiment_tracker": {"nested": True}})(count=1)
    with pytest.raises(RuntimeError):
        failing()
    broken_fail = Client().get_pipeline("failing").last_run
    parent_ok, parent_failed = parent_of(nested.id), parent_of(broken_fail.id)
    children = embedded_client.search_runs(
        [embedded_client.get_run(parent_ok).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_ok}'",
    )
    assert len(children) == 2
    # What a killed process leaves behind: runs still RUNNING, no failed-step tag.
    for run_id in (parent_ok, parent_failed, children[0].info.run_id):
        embedded_client.update_run(run_id, status="RUNNING")
    embedded_client.delete_tag(parent_failed, "zenml.failed_step")

    before = runs("--last", "2")
    assert [row["mlflow_status"] for row in before] == ["RUNNING", "RUNNING"]
    repaired = CliRunner().invoke(cli, ["runs", "--last", "2", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert (
        f"repaired {broken_fail.name}: {broken_fail.name} ({parent_failed}): RUNNING -> FAILED"
        in repaired.output
    )
    assert f"({children[0].info.run_id}): RUNNING -> FINISHED" in repaired.output
    assert f"({parent_ok}): RUNNING -> FINISHED" in repaired.output

    assert embedded_client.get_run(parent_ok).info.status == "FINISHED"
    assert embedded_client.get_run(children[0].info.run_id).info.status == "FINISHED"
    failed_parent = embedded_client.get_run(parent_failed)
    assert failed_parent.info.status == "FAILED"
    assert failed_parent.data.tags["zenml.failed_step"] == "explode"
    again = CliRunner().invoke(cli, ["runs", "--last", "2", "--repair", "-o", "json"])
    assert [row["repaired"] for row in json.loads(again.output)] == [[], []]


def test_repair_with_nothing_to_repair_says_so(zenml_stack):
    linear(count=1)
    result = CliRunner().invoke(cli, ["runs", "linear", "--last", "1", "--repair"])
    assert result.exit_code == 0, result.output
    assert "nothing to repair: MLflow has the status ZenML recorded for every run shown" in (
        result.output
    )
    assert "repaired" not in result.output


def test_a_killed_process_is_settled_after_the_troubleshooting_steps(
    zenml_stack, embedded_client, tmp_path
):
    started = tmp_path / "started"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tests.integration.pipelines import stalled; stalled(started={str(started)!r})",
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    run = Client().get_pipeline("stalled").last_run
    assert run.status.value == "running"

    left = CliRunner().invoke(cli, ["runs", "stalled", "--last", "1", "--repair"])
    assert left.exit_code == 0, left.output
    assert f"left {run.name}: ZenML says it is running" in left.output
    assert embedded_client.get_run(parent_of(run.id)).info.status == "RUNNING"

    page = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    section = page.split("**The step's process was killed", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.DOTALL)[1]
    exec(snippet.replace('"RUN"', repr(run.name)), {})

    settled = CliRunner().invoke(cli, ["runs", "stalled", "--last", "1", "--repair"])
    assert settled.exit_code == 0, settled.output
    assert f"({parent_of(run.id)}): RUNNING -> FAILED" in settled.output
    parent = embedded_client.get_run(parent_of(run.id))
    assert parent.info.status == "FAILED"
    assert parent.data.tags["zenml.failed_step"] == "stall"
