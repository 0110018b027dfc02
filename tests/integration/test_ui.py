"""`zenml-mlflow ui` serves the embedded store where the step links point, and only there."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.conftest import links_on_port
from tests.integration.pipelines import linear
from testsupport.servers import free_port, stop, wait_for_health

pytestmark = pytest.mark.integration

BIN = str(Path(sys.executable).parent / "zenml-mlflow")


def test_ui_serves_the_runs_that_step_links_point_to(zenml_stack, session_dir):
    port = free_port()
    with links_on_port(port) as tracker:
        serve_and_check(tracker, port, session_dir)


def serve_and_check(tracker: str, port: int, session_dir: Path) -> None:
    """Run a pipeline, then serve its store with `zenml-mlflow ui` and follow a step link."""
    run = Client().get_pipeline_run(linear(count=4).id)
    link = str(run.steps["produce"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/")
    experiment_id, run_id = link.split("/#/experiments/")[1].split("?")[0].split("/runs/")

    printed = subprocess.run(
        [BIN, "ui", tracker, "--print-command"], capture_output=True, text=True, check=True
    )
    assert f"--port {port}" in printed.stdout and "--workers 1" in printed.stdout

    log = session_dir / "ui.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [BIN, "ui", tracker], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, server, log)
        first = log.read_text().splitlines()[0]
        assert first.startswith("MLflow UI for sqlite:///")
        assert first.endswith(f" on {base} (Ctrl+C to stop)")
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}") as response:
            served = json.load(response)["run"]
        assert served["info"]["experiment_id"] == experiment_id
        assert served["info"]["run_name"] == run.name
        with urllib.request.urlopen(base) as response:
            assert b"<html" in response.read().lower()
        # Without --jobs, no job-runner consumers: the server and its one uvicorn worker.
        group = [p for p in psutil.process_iter() if _group(p) == server.pid]
        assert len(group) == 2, [p.cmdline() for p in group]

        started = time.monotonic()
        busy = subprocess.run([BIN, "ui", tracker], capture_output=True, text=True, timeout=120)
        assert busy.returncode == 1 and busy.stdout == ""
        assert busy.stderr.startswith(f"Error: port {port} on 127.0.0.1 is already in use")
        assert f"zenml experiment-tracker update {tracker} --ui_url=" in busy.stderr
        assert busy.stderr.count("\n") == 1
        assert time.monotonic() - started < 60  # it does not wait for a server to give up
    finally:
        stop(server)


def test_ui_serves_the_links_of_an_earlier_ui_url_on_its_port(zenml_stack):
    links, earlier = free_port(), free_port()
    with links_on_port(links) as tracker:
        printed = subprocess.run(
            [BIN, "ui", tracker, "--port", str(earlier), "--print-command"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.split()
    assert command[command.index("--port") + 1] == str(earlier)
    assert command[command.index("--host") + 1] == "127.0.0.1"


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None
