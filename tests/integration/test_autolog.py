"""Autologging with a child run per step against a real server: the step starts and finishes."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.test_performance import active_stack
from testsupport.servers import MlflowServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(zenml_stack, mlflow_server) -> Iterator[MlflowServer]:
    with active_stack("autolog", f"tracking_uri={mlflow_server.url}"):
        yield mlflow_server


def test_nested_autolog_with_async_logging_does_not_deadlock(server):
    """`mlflow.autolog()` importing sklearn could race the batching thread's first request.

    A fresh process, so sklearn is first imported under autologging's import hooks, as for users.
    """
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from tests.integration.pipelines import autologged; autologged()",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the step hung (deadlock): {str(hung.stdout)[-2000:]}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("autologged")
    children = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    assert len(children) == 1
    assert children[0].data.params.get("alpha") == "0.5"  # from the tracker, synchronously
    assert children[0].data.params.get("fit_intercept") == "True"  # from sklearn autologging
