"""The code of ZenML's MLflow page (as docs/migrating.md gives it) runs on an mlflow_plus tracker."""

import io
import logging
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from mlflow import MlflowClient
from zenml import pipeline
from zenml.client import Client
from zenml.enums import ExecutionStatus

from testsupport import docs
from testsupport.docs import python_block
from tracker_flavor.runs import tags
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
SECTION = "## Code from ZenML's MLflow page\n"


def snippet(heading: str) -> str:
    """Return the Python block of a `###` subsection of the page's section."""
    section = PAGE.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    part = section.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return python_block(part, heading)


def define(heading: str) -> None:
    """Run a block in this module, as if written here (ZenML reads a step's source)."""
    docs.define(snippet(heading), f"{PAGE}#{heading}", globals())


@pipeline(enable_cache=False)
def training() -> None:
    trainer()  # noqa: F821 (defined by the page)
    evaluator()  # noqa: F821
    step_one()  # noqa: F821


def test_the_pages_code_runs_and_its_settings_key_still_applies(
    tracker_stack, embedded_client, caplog
):
    tracker_stack("mlflow_tracker")
    runtime.reset()  # the process may have warned about the key before
    for heading in ("Log from a step", "The active stack's tracker", "Nested runs and tags"):
        define(heading)
    with caplog.at_level(logging.WARNING):
        run = Client().get_pipeline_run(training().id)
    assert run.status == ExecutionStatus.COMPLETED
    warnings = [
        r.getMessage() for r in caplog.records if "experiment_tracker.mlflow" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "Rename it to 'experiment_tracker'" in warnings[0]

    parent = embedded_client.get_run(run.run_metadata["mlflow_parent_run_id"])
    assert parent.data.params["features"] == "1"
    assert "train_accuracy" in parent.data.metrics and "score" in parent.data.metrics
    assert any(key.startswith("training_") for key in parent.data.metrics)  # sklearn autolog
    # The old key's settings reached the step: a child run, with the tag.
    child_id = run.steps["step_one"].run_metadata["mlflow_run_id"]
    child = embedded_client.get_run(child_id)
    assert child_id != parent.info.run_id
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["key"] == "value"
    assert child.data.tags[tags.STEP_NAME] == "step_one"

    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(snippet("The MLflow UI"), {})
    link, command, uri = printed.getvalue().splitlines()
    trainer_run = run.steps["trainer"].run_metadata["mlflow_run_id"]
    assert link.startswith("http://127.0.0.1:5000/#/experiments/") and link.endswith(
        f"{trainer_run}?workflowType=machine_learning"
    )
    store = run.steps["trainer"].run_metadata["mlflow_tracking_uri"]
    assert command == f"mlflow ui --backend-store-uri {store}"
    assert uri == store and store.startswith("sqlite:///")
    assert MlflowClient(tracking_uri=store).get_run(trainer_run).info.run_id == trainer_run
