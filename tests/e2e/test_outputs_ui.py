"""The MLflow UI shows a step's report and its ZenML datasets, in a real Chromium.

The screenshots are the ones of docs/what-gets-logged.md (copied from test-artifacts/).
"""

import pytest
from mlflow import MlflowClient
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.outputs_pipelines import outputs_pipeline
from tests.integration.test_outputs import delivered
from tests.integration.test_performance import active_stack
from testsupport.browser import chromium_page, screenshot_after
from testsupport.servers import MlflowServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def train_link(zenml_stack: str, mlflow_server: MlflowServer) -> tuple[str, str]:
    """Run the outputs pipeline on a real server; return the train step's link and report."""
    with active_stack("outputs_ui", f"tracking_uri={mlflow_server.url}"):
        outputs_pipeline()
        step = delivered("train", "outputs_pipeline")
    link = str(step.run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    run_id = str(step.run_metadata["mlflow_run_id"])
    (report,) = [
        a.path
        for a in MlflowClient(mlflow_server.url).list_artifacts(run_id, "zenml/train/report")
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
        page.goto(f"{link}/artifacts/{report}")
        with screenshot_after(page, "outputs-report.png"):
            page.frame_locator("iframe").get_by_text("Training report").wait_for(timeout=90_000)
