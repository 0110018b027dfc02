"""The MLflow UI shows a step's report, its ZenML datasets, mapped steps and unified steps' metrics.

The screenshots are the ones of docs/what-gets-logged.md (copied from test-artifacts/).
"""

import json
from collections.abc import Iterator

import mlflow
import pytest
from mlflow import MlflowClient
from zenml import pipeline, step
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.outputs_pipelines import outputs_pipeline
from tests.integration.test_performance import active_stack
from testsupport.browser import chromium_page, screenshot_after
from testsupport.servers import MlflowServer
from tracker_flavor.runs import tags

pytestmark = pytest.mark.e2e


@step(experiment_tracker=True)
def validate() -> float:
    mlflow.log_metric("score", 0.81)
    return 0.81


@step(experiment_tracker=True)
def holdout(validated: float) -> None:
    mlflow.log_metric("score", validated - 0.03)


@pipeline(enable_cache=False)
def evaluation() -> None:
    holdout(validate())


@pytest.fixture(scope="module")
def ui_server(zenml_stack: str, mlflow_server: MlflowServer) -> Iterator[MlflowServer]:
    """The shared server, and the module's stack tracking to it, for every screenshot here."""
    with active_stack("outputs_ui", f"tracking_uri={mlflow_server.url}"):
        yield mlflow_server


@pytest.fixture(scope="module")
def train_link(ui_server: MlflowServer) -> tuple[str, str]:
    """Run the outputs pipeline; return the train step's link and report."""
    outputs_pipeline()  # returns with the outputs in MLflow
    step = Client().get_pipeline("outputs_pipeline").last_run.steps["train"]
    link = str(step.run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    run_id = str(step.run_metadata["mlflow_run_id"])
    (report,) = [
        a.path
        for a in MlflowClient(ui_server.url).list_artifacts(run_id, "zenml/train/report")
        if a.path.endswith(".html")
    ]
    return link, report


def test_the_run_shows_the_zenml_datasets_and_the_report(train_link):
    link, report = train_link
    with chromium_page() as page:
        page.goto(link)
        with screenshot_after(page, "outputs-datasets.png"):
            page.get_by_text("Datasets", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("frame (", exact=False).first.wait_for(timeout=90_000)
        run_page, _, view = link.partition("?")
        page.goto(f"{run_page}/artifacts/{report}?{view}")
        with screenshot_after(page, "outputs-report.png"):
            page.frame_locator("iframe").get_by_text("Training report").wait_for(timeout=90_000)


def test_the_mapped_steps_compare_side_by_side_with_their_items_and_scores(ui_server):
    from tests.integration.scenarios.pipelines import sweep

    run = Client().get_pipeline_run(sweep(C=0.5, label="ridge sweep").id)
    mapped = sorted(name for name in run.steps if name.startswith("map:fit:"))
    run_ids = [str(run.steps[name].run_metadata["mlflow_run_id"]) for name in mapped]
    experiment = MlflowClient(ui_server.url).get_run(run_ids[0]).info.experiment_id
    runs, experiments = json.dumps(run_ids), json.dumps([experiment])
    with chromium_page() as page:
        page.set_viewport_size({"width": 1440, "height": 1500})  # the params and metrics too
        page.goto(f"{ui_server.url}/#/compare-runs?runs={runs}&experiments={experiments}")
        with screenshot_after(page, "mapped-steps-compared.png"):
            for name in mapped:
                page.get_by_text(name, exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("alpha", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("score", exact=True).first.wait_for(timeout=90_000)
            page.get_by_text("0.909", exact=True).first.wait_for(timeout=90_000)


def test_two_unified_steps_logging_one_key_are_two_points_of_the_parents_chart(ui_server):
    run = Client().get_pipeline_run(evaluation().id)
    link = str(run.steps["holdout"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    parent = MlflowClient(ui_server.url).get_run(str(run.run_metadata["mlflow_parent_run_id"]))
    history = MlflowClient(ui_server.url).get_metric_history(parent.info.run_id, "score")
    assert sorted((point.step, point.value) for point in history) == [(0, 0.81), (1, 0.78)]
    assert parent.data.tags[f"{tags.STEP_INDEX}holdout"] == "1"
    run_page, _, view = link.partition("?")
    with chromium_page() as page:
        page.set_viewport_size({"width": 1200, "height": 800})
        page.goto(f"{run_page}/model-metrics?{view}")
        with screenshot_after(page, "unified-steps-one-key.png"):
            page.get_by_text("score", exact=True).first.wait_for(timeout=90_000)
            page.locator("canvas, svg .point, .js-plotly-plot").first.wait_for(timeout=90_000)
