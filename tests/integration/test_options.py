"""Settings, precedence of tracking URIs, autologging and retries on real pipelines."""

import os
import uuid

import pytest
from mlflow import MlflowClient
from zenml.client import Client
from zenml.config.retry_config import StepRetryConfig

from tests.integration.pipelines import fitting, linear, retried
from tests.integration.scenarios.pipelines import scenario
from tests.integration.test_run_model import runs_of

pytestmark = pytest.mark.integration


def test_an_unknown_setting_stops_the_pipeline_before_anything_is_logged(
    zenml_stack, embedded_client
):
    before = len(
        embedded_client.search_runs([e.experiment_id for e in embedded_client.search_experiments()])
    )
    pipeline = linear.with_options(settings={"experiment_tracker": {"experiment": "typo"}})
    with pytest.raises(Exception) as error:
        pipeline()
    chain = []
    exc: BaseException | None = error.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("'experiment' (did you mean 'experiment_name'?)" in text for text in chain)
    after = len(
        embedded_client.search_runs([e.experiment_id for e in embedded_client.search_experiments()])
    )
    assert after == before


def test_an_over_long_experiment_name_stops_the_pipeline_at_its_start(zenml_stack):
    def runs() -> int:
        return Client().list_pipeline_runs(pipeline_name="linear", size=1).total

    before = runs()
    pipeline = linear.with_options(
        settings={"experiment_tracker": {"experiment_name": "x" * 10_000}}
    )
    with pytest.raises(Exception, match="experiment_name is 10000 characters long"):
        pipeline()
    assert runs() == before  # refused before ZenML created a run, let alone a step


def test_parameters_are_not_logged_when_switched_off(zenml_stack, embedded_client):
    pipeline = linear.with_options(settings={"experiment_tracker": {"log_step_parameters": False}})
    parents, _ = runs_of(embedded_client, pipeline().id)
    assert parents[0].data.params == {}


def test_autolog_is_on_for_the_step_only(zenml_stack, embedded_client, process_snapshot, capfd):
    pipeline = fitting.with_options(settings={"experiment_tracker": {"autolog": True}})
    parents, _ = runs_of(embedded_client, pipeline().id)
    assert parents[0].data.params.get("alpha") == "0.5"  # logged by sklearn autologging
    assert parents[0].data.params.get("fit.alpha") == "0.5"  # logged by the tracker
    # Off again after the step.
    from mlflow.utils.autologging_utils import autologging_is_disabled

    assert autologging_is_disabled("sklearn")
    # Without autolog, no autologging noise at all (the built-in warns about fastai each step).
    fitting()
    assert "autologging" not in capfd.readouterr().err.lower()


def test_mlflow_tracking_uri_of_the_process_is_used_when_the_config_has_none(
    zenml_stack, session_dir, monkeypatch
):
    uri = f"sqlite:///{session_dir}/from-env-{uuid.uuid4().hex[:6]}.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = linear()
    assert os.environ["MLFLOW_TRACKING_URI"] == uri  # the user's variable is left as it was
    parents, _ = runs_of(MlflowClient(uri), run.id)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    metadata = Client().get_pipeline_run(run.id).steps["produce"].run_metadata
    assert metadata["mlflow_tracking_uri"] == uri


def test_a_file_store_uri_works_on_mlflow_3(zenml_stack, tracker_stack, session_dir):
    uri = (session_dir / f"file-store-{uuid.uuid4().hex[:6]}").as_uri()
    tracker_stack("plus_file", tracking_uri=uri, nested=True)
    run = scenario()
    assert run.status == "completed"
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # allowed for the steps only
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # for this test's own reading client
    try:
        parents, children = runs_of(MlflowClient(uri), run.id)
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    (child,) = children.values()
    assert child.info.status == "FINISHED" and child.data.metrics == {"m": 4.0}
    assert child.data.params == {"p": "v", "points": "5"}


def test_a_retried_step_gets_a_child_run_per_attempt(
    zenml_stack, embedded_client, process_snapshot
):
    pipeline = retried.with_options(
        settings={"experiment_tracker": {"nested": True}},
        steps={"flaky": {"retry": StepRetryConfig(max_retries=1, delay=0)}},
    )
    run = Client().get_pipeline_run(pipeline(key=uuid.uuid4().hex).id)
    assert run.status == "completed"
    runs = embedded_client.search_runs(
        [e.experiment_id for e in embedded_client.search_experiments()],
        filter_string=(
            f"tags.`zenml.pipeline_run_id` = '{run.id}' and tags.`zenml.step_name` = 'flaky'"
        ),
    )
    by_attempt = {r.data.tags["zenml.attempt"]: r for r in runs}
    assert set(by_attempt) == {"1", "2"}
    assert by_attempt["1"].info.status == "FAILED"
    assert by_attempt["2"].info.status == "FINISHED"
    parents, _ = runs_of(embedded_client, run.id)
    assert parents[0].info.status == "FINISHED"
