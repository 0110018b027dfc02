"""The `parent_run_id` setting: a pipeline run's runs go under an existing MLflow run."""

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.scenarios.pipelines import scenario
from tests.integration.scenarios.test_servers import step_failure
from tests.integration.test_run_model import link
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration


def test_the_pipeline_runs_go_under_an_existing_run_in_its_experiment(
    servers, tracker_stack, caplog
):
    tracker_stack("plus_under", tracking_uri=servers.plain.url)
    client = MlflowClient(servers.plain.url)
    umbrella = client.create_run(client.create_experiment("parent-run-team"), run_name="sweep")
    under = umbrella.info.run_id
    nested = {"experiment_tracker": {"nested": True, "parent_run_id": under}}
    run = Client().get_pipeline_run(scenario.with_options(settings=nested)().id)
    assert run.status == "completed"

    (parent,) = client.search_runs(
        [umbrella.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{under}'",
    )
    assert parent.data.tags[tags.PIPELINE_RUN_ID] == str(run.id)
    assert tags.STEP_NAME not in parent.data.tags and parent.info.status == "FINISHED"
    (child,) = client.search_runs(
        [umbrella.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    assert child.data.tags[tags.STEP_NAME] == "log_things"
    assert len(client.get_metric_history(child.info.run_id, "m")) == 5
    assert client.get_experiment_by_name("scenario") is None or not client.search_runs(
        [client.get_experiment_by_name("scenario").experiment_id],
        filter_string=f"tags.`{tags.PIPELINE_RUN_ID}` = '{run.id}'",
    )
    exp = umbrella.info.experiment_id
    assert f"/#/experiments/{exp}/runs/{parent.info.run_id}" in link(run)
    assert f"/#/experiments/{exp}/runs/{child.info.run_id}" in link(run, "log_things")

    # The run the setting names must exist, and be in the experiment experiment_name names.
    conflicting = {"experiment_tracker": {**nested["experiment_tracker"], "experiment_name": "x"}}
    with pytest.raises(RuntimeError):
        scenario.with_options(settings=conflicting)()
    assert (
        f"experiment_name 'x' conflicts with parent_run_id {under}, which is in the experiment "
        "'parent-run-team'" in step_failure(caplog)
    )
