"""The Getting started page's code, run as written: its step, and finding the run, also when cached."""

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from zenml import pipeline
from zenml.client import Client
from zenml.enums import ExecutionStatus

from testsupport import docs
from testsupport.docs import python_block
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"


def snippet(heading: str) -> str:
    """Return the first Python block of a section of the page."""
    section = PAGE.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return python_block(section, heading)


def define(heading: str) -> None:
    """Run a section's code in this module, as if written here (ZenML reads a step's source)."""
    docs.define(snippet(heading), f"{PAGE}#{heading}", globals())


define("3. Track a step")


@pipeline
def training() -> None:
    train()  # noqa: F821 (defined by the page's snippet)


def find_the_run() -> list[str]:
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(snippet("4. Find the run"), {})
    return printed.getvalue().splitlines()


def test_find_the_run_works_for_a_run_and_for_its_cached_rerun(zenml_stack, embedded_client):
    first = Client().get_pipeline_run(training().id)
    assert first.steps["train"].status == ExecutionStatus.COMPLETED
    found = find_the_run()
    run_id = first.steps["train"].run_metadata["mlflow_run_id"]
    assert found == [str(first.steps["train"].run_metadata["experiment_tracker_url"])] * 2
    assert found[0].endswith(f"/runs/{run_id}?workflowType=machine_learning")
    assert embedded_client.get_run(run_id).data.metrics["loss"] == 0.3

    cached = Client().get_pipeline_run(training().id)
    step = cached.steps["train"]
    assert step.status == ExecutionStatus.CACHED
    assert step.original_step_run_id == first.steps["train"].id
    # What the page says a cached step records: nothing, and no MLflow run for the cached run.
    assert "experiment_tracker_url" not in step.run_metadata
    assert "experiment_tracker_url" not in cached.run_metadata
    experiment = embedded_client.get_run(run_id).info.experiment_id
    assert not embedded_client.search_runs(
        [experiment], filter_string=f"tags.`{tags.PIPELINE_RUN_ID}` = '{cached.id}'"
    )
    assert find_the_run() == found
