"""`zenml-mlflow ui` serves the embedded store, so a step's link resolves to its run."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.pipelines import linear
from tests.support.servers import free_port, stop, wait_for_health

pytestmark = pytest.mark.integration


def test_ui_serves_the_runs_that_step_links_point_to(zenml_stack, session_dir):
    run = Client().get_pipeline_run(linear(count=4).id)
    link = str(run.steps["produce"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    assert link.startswith("http://127.0.0.1:5000/#/experiments/")
    experiment_id, run_id = link.split("/#/experiments/")[1].split("/runs/")

    port = free_port()
    command = [str(Path(sys.executable).parent / "zenml-mlflow"), "ui", "--port", str(port)]
    printed = subprocess.run(
        [*command, "--print-command"], capture_output=True, text=True, check=True
    )
    assert "--backend-store-uri sqlite:///" in printed.stdout and "--workers 1" in printed.stdout

    log = session_dir / "ui.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base, server, log)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}") as response:
            served = json.load(response)["run"]
        assert served["info"]["experiment_id"] == experiment_id
        assert served["info"]["run_name"] == run.name
        assert {m["key"] for m in served["data"]["metrics"]} == {"produced", "consumed"}
        with urllib.request.urlopen(base) as response:
            assert b"<html" in response.read().lower()
    finally:
        stop(server)
