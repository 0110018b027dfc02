"""Where ZenML users look: the ZenML dashboard of a ZenML server, in headless Chromium. A step's
`experiment_tracker_url` metadata links to its MLflow run; following it lands on the MLflow UI page of
the step's nested run, or of the pipeline run's parent (unified). Screenshots land in test-artifacts/."""

from dataclasses import dataclass

import pytest
from mlflow import MlflowClient
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from examples.quickstart.pipeline import quickstart
from testsupport.browser import ARTIFACTS, chromium_page, screenshot_after
from testsupport.topology import USER
from tracker_flavor.runs.metadata import ARTIFACTS_KEY, VALUES_KEY

pytestmark = pytest.mark.e2e

STEP = "evaluate"


@dataclass
class TrackedRun:
    run_id: str
    link: str
    mlflow_run_id: str
    parent_run_id: str


@pytest.fixture(scope="module")
def tracked_runs(topology_session) -> dict[str, TrackedRun]:
    """The quickstart on the topology, nested and unified; the evaluate step's links from ZenML."""
    runs = {}
    with topology_session.connected():
        Client().activate_stack(topology_session.stack_id)
        for mode, nested in (("nested", True), ("unified", False)):
            short = quickstart.with_options(
                settings={"experiment_tracker": {"nested": nested}},
                steps={"train": {"parameters": {"epochs": 5}}},
            )
            run = Client().get_pipeline_run(short().id)
            assert run.status == "completed"
            metadata = run.steps[STEP].run_metadata
            runs[mode] = TrackedRun(
                str(run.id),
                str(metadata[METADATA_EXPERIMENT_TRACKER_URL]),
                str(metadata["mlflow_run_id"]),
                str(metadata["mlflow_parent_run_id"]),
            )
    return runs


def follow_the_step_link(top, run: TrackedRun, name: str) -> str:
    """Log in, open the run's step, follow its experiment_tracker_url; return the page's text."""
    # The login page animates a WebGL shader: software rendering of it slows every step.
    flags = ["--disable-webgl", "--disable-3d-apis"]
    with chromium_page(flags, reduced_motion="reduce") as page:
        page.set_default_timeout(120_000)
        page.goto(f"{top.zenml.url}/login")
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(top.password)
        page.get_by_label("Password").press("Enter")
        page.wait_for_url(lambda url: "/login" not in url)
        page.goto(f"{top.zenml.url}/projects/default/runs/{run.run_id}")
        page.get_by_text(STEP, exact=True).first.click()
        page.get_by_role("tab", name="Metadata").click()
        key = page.locator("dt", has_text=METADATA_EXPERIMENT_TRACKER_URL)
        link = key.locator("xpath=following-sibling::dd[1]//a")
        assert link.get_attribute("href") == run.link
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-step.png"))
        # The link first among the plain keys; the step's counts, a card of their own, closed
        # as ZenML shows a dict, without a zero: all went well.
        plain = card_keys(page, "Uncategorized")
        assert plain[0] == METADATA_EXPERIMENT_TRACKER_URL
        assert {"mlflow_run_id", "mlflow_parent_run_id"} <= set(plain)
        assert not [key for key in plain if key.startswith(("mlflow_values", "mlflow_artifacts"))]
        page.get_by_role("button", name=VALUES_KEY, exact=True).click()
        page.locator("dt", has_text="delivered").first.wait_for()
        assert card_keys(page, VALUES_KEY) == ["delivered"]
        assert page.get_by_role("button", name=ARTIFACTS_KEY, exact=True).count() == 0
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}-step-metadata.png"))
        with page.context.expect_page() as opened:
            link.click()  # target=_blank: MLflow opens in a new tab
        mlflow_page = opened.value
        mlflow_page.set_default_timeout(120_000)
        with screenshot_after(mlflow_page, f"dashboard-{name}-mlflow.png"):
            mlflow_page.get_by_text("test_accuracy", exact=True).first.wait_for()
        assert mlflow_page.url == run.link
        return mlflow_page.locator("body").inner_text()


def card_keys(page, title: str) -> list[str]:
    """Return the keys a card of the Metadata tab shows, in its order."""
    trigger = page.get_by_role("button", name=title, exact=True)
    card = trigger.locator("xpath=ancestor::div[contains(@class, 'rounded-lg')][1]")
    return [key.inner_text().strip() for key in card.locator("dt").all()]


def run_name(top, run_id: str) -> str:
    return str(MlflowClient(top.mlflow.url).get_run(run_id).info.run_name)


def test_dashboard_step_link_lands_on_the_nested_run(topology_session, tracked_runs):
    run = tracked_runs["nested"]
    assert run.mlflow_run_id != run.parent_run_id and run.link.endswith(
        f"/{run.mlflow_run_id}?workflowType=machine_learning"
    )
    text = follow_the_step_link(topology_session, run, "nested")
    assert run_name(topology_session, run.mlflow_run_id) == STEP and STEP in text
    assert run_name(topology_session, run.parent_run_id) in text  # the page's "Parent run"


def test_dashboard_step_link_lands_on_the_parent_run(topology_session, tracked_runs):
    run = tracked_runs["unified"]
    assert run.mlflow_run_id == run.parent_run_id and run.link.endswith(
        f"/{run.parent_run_id}?workflowType=machine_learning"
    )
    text = follow_the_step_link(topology_session, run, "unified")
    assert run_name(topology_session, run.parent_run_id) in text
