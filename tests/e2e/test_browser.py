"""Step links open their MLflow run, in the model-training view, in a real headless Chromium: on a
`zenml-mlflow server`, and on the embedded store served by `zenml-mlflow ui`. Screenshots land in
test-artifacts/."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from examples.quickstart.pipeline import quickstart
from tests.integration.conftest import TRACKER, links_on_port
from testsupport.browser import chromium_page, screenshot_after
from testsupport.servers import free_port, stop, wait_for_health

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent / "zenml-mlflow"


@dataclass
class QuickstartRun:
    name: str
    link: str


def quickstart_link() -> QuickstartRun:
    """Run the quickstart and return its name and the evaluate step's link from ZenML."""
    # A few epochs: the pipeline is the quickstart's, its length does not matter here.
    short = quickstart.with_options(steps={"train": {"parameters": {"epochs": 5}}})
    run = Client().get_pipeline_run(short().id)
    assert run.status == "completed"
    return QuickstartRun(
        run.name, str(run.steps["evaluate"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
    )


@pytest.fixture(scope="module")
def runs(zenml_stack: str, session_dir: Path) -> Iterator[dict[str, tuple[QuickstartRun, str]]]:
    """The quickstart on a `zenml-mlflow server` and on the embedded store; both served."""
    data_dir, server_port, ui_port = session_dir / "e2e-server", free_port(), free_port()
    # Both servers start at once while the embedded run goes on: each takes a minute here.
    starting = subprocess.Popen(
        [str(BIN), "server", "start", "--data-dir", str(data_dir), "--port", str(server_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    ui_log = session_dir / "e2e-ui.log"
    ui_url = f"http://127.0.0.1:{ui_port}"
    ui: subprocess.Popen[bytes] | None = None
    try:
        # `zenml-mlflow ui` serves where the step links point: the tracker's ui_url, a free port
        # while the embedded run records its links and the UI reads its configuration.
        with links_on_port(ui_port):
            with ui_log.open("wb") as out:
                ui = subprocess.Popen(
                    [str(BIN), "ui", TRACKER],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # stop() ends the server's whole process group
                )
            embedded = quickstart_link()
            wait_for_health(ui_url, ui, ui_log, seconds=300)
        assert starting.wait(timeout=300) == 0, starting.stdout.read() if starting.stdout else ""
        server_url = f"http://127.0.0.1:{server_port}"
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_URI", server_url)  # the tracker's documented fallback
            on_server = quickstart_link()
        yield {"server": (on_server, server_url), "embedded": (embedded, ui_url)}
    finally:
        if ui is not None:
            stop(ui)
        subprocess.run([str(BIN), "server", "stop", "--data-dir", str(data_dir)], check=False)


def open_in_chromium(link: str, expected: list[str], screenshot: str) -> None:
    """Open `link` headless, wait until every expected text shows, and save a screenshot."""
    with chromium_page() as page, screenshot_after(page, screenshot):
        page.goto(link)
        # MLflow 3's model-training view: its sidebar has the model registry, the GenAI one judges.
        for text in [*expected, "Model registry"]:
            page.get_by_text(text, exact=True).first.wait_for(timeout=90_000)
        assert page.get_by_text("Judges", exact=True).count() == 0


def test_step_link_opens_its_run_on_a_zenml_mlflow_server(runs):
    run, server_url = runs["server"]
    assert run.link.startswith(f"{server_url}/#/experiments/")
    open_in_chromium(run.link, [run.name, "test_accuracy"], "server-run.png")


def test_step_link_opens_its_run_in_zenml_mlflow_ui(runs):
    run, ui_url = runs["embedded"]
    assert run.link.startswith(f"{ui_url}/#/experiments/")
    open_in_chromium(run.link, [run.name, "test_accuracy"], "embedded-run.png")
