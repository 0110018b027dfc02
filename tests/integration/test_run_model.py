"""One MLflow parent run per ZenML run, children in nested mode, statuses, params, metadata."""

import pytest
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.pipelines import failing, linear, output_not_saved, partly_failing
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration


def runs_of(client, pipeline_run_id):
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{tags.PIPELINE_RUN_ID}` = '{pipeline_run_id}'",
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags[tags.STEP_NAME]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return parents, children


def link(run, step=None):
    metadata = run.steps[step].run_metadata if step else run.run_metadata
    return str(metadata[METADATA_EXPERIMENT_TRACKER_URL])


def test_unified_mode_logs_every_step_into_one_parent(
    zenml_stack, embedded_client, process_snapshot
):
    run = Client().get_pipeline_run(linear(count=5).id)
    parents, children = runs_of(embedded_client, run.id)
    assert len(parents) == 1 and not children
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == run.name
    expected_tags = {
        tags.PIPELINE_RUN_ID: str(run.id),
        tags.PIPELINE_NAME: "linear",
        tags.RUN_NAME: run.name,
        tags.STACK: zenml_stack,
        tags.LAST_STEP: "consume",
    }
    assert expected_tags.items() <= parent.data.tags.items()
    assert parent.data.params == {
        "count": "5",  # the pipeline's parameter
        "produce.count": "5",
        "produce.config.opt.lr": "0.1",
        "produce.config.name": "x",
        "consume.factor": "2.0",
    }
    assert len(embedded_client.get_metric_history(parent.info.run_id, "produced")) == 5
    assert parent.data.metrics["consumed"] == 10.0
    # Both steps log `score` without a step: each at its place in the pipeline, none hidden.
    score = embedded_client.get_metric_history(parent.info.run_id, "score")
    assert sorted((point.step, point.value) for point in score) == [(0, 5.0), (1, 10.0)]
    assert parent.data.tags[f"{tags.STEP_INDEX}produce"] == "0"
    assert parent.data.tags[f"{tags.STEP_INDEX}consume"] == "1"
    experiment = embedded_client.get_experiment(parent.info.experiment_id)
    assert experiment.name == "linear"
    url = (
        f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning"
    )
    for step in ("produce", "consume"):
        metadata = run.steps[step].run_metadata
        assert str(metadata[METADATA_EXPERIMENT_TRACKER_URL]) == url
        assert metadata["mlflow_run_id"] == metadata["mlflow_parent_run_id"] == parent.info.run_id
        assert metadata["mlflow_experiment_id"] == experiment.experiment_id
        assert metadata["mlflow_tracking_uri"].startswith("sqlite:///")
    assert link(run) == url


def test_nested_mode_gives_each_step_a_child_run(zenml_stack, embedded_client, process_snapshot):
    pipeline = linear.with_options(
        settings={
            "experiment_tracker": {
                "nested": True,
                "experiment_name": "nested-exp",
                "tags": {"team": "core"},
            }
        }
    )
    run = Client().get_pipeline_run(pipeline(count=2).id)
    parents, children = runs_of(embedded_client, run.id)
    assert len(parents) == 1 and set(children) == {"produce", "consume"}
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["team"] == "core"
    assert embedded_client.get_experiment(parent.info.experiment_id).name == "nested-exp"
    for name, child in children.items():
        assert child.info.status == "FINISHED"
        assert child.info.run_name == name
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags[tags.STEP_RUN_ID] == str(run.steps[name].id)
        assert child.data.tags[tags.ATTEMPT] == "1"
        assert child.data.tags["team"] == "core"
        metadata = run.steps[name].run_metadata
        assert metadata["mlflow_run_id"] == child.info.run_id
        assert metadata["mlflow_parent_run_id"] == parent.info.run_id
        assert link(run, name).endswith(f"/runs/{child.info.run_id}?workflowType=machine_learning")
    assert children["produce"].data.params == {
        "count": "2",
        "config.opt.lr": "0.1",
        "config.name": "x",
    }
    assert len(embedded_client.get_metric_history(children["produce"].info.run_id, "produced")) == 2
    assert not parent.data.metrics and parent.data.params == {"count": "2"}  # the pipeline's
    assert link(run).endswith(f"/runs/{parent.info.run_id}?workflowType=machine_learning")


def test_a_failing_step_fails_its_child_and_the_parent(
    zenml_stack, embedded_client, process_snapshot
):
    pipeline = failing.with_options(settings={"experiment_tracker": {"nested": True}})
    with pytest.raises(RuntimeError):
        pipeline()
    run = Client().get_pipeline("failing").last_run
    assert run.status == "failed"
    parents, children = runs_of(embedded_client, run.id)
    assert len(parents) == 1
    assert parents[0].info.status == "FAILED"
    assert parents[0].data.tags[tags.FAILED_STEP] == "explode"
    assert children["produce"].info.status == "FINISHED"
    assert children["explode"].info.status == "FAILED"
    assert children["explode"].data.metrics == {"before_failure": 1.0}  # nothing lost
    assert link(run, "explode").endswith(
        f"/runs/{children['explode'].info.run_id}?workflowType=machine_learning"
    )


def test_continue_on_failure_ends_the_parent_failed_after_the_other_steps(
    zenml_stack, embedded_client, process_snapshot
):
    pipeline = partly_failing.with_options(settings={"experiment_tracker": {"nested": True}})
    with pytest.raises(RuntimeError):
        pipeline()
    run = Client().get_pipeline("partly_failing").last_run
    parents, children = runs_of(embedded_client, run.id)
    assert run.steps["consume"].status == "completed"  # ran although explode had failed
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert parents[0].data.tags[tags.FAILED_STEP] == "explode"
    assert children["consume"].info.status == "FINISHED"
    assert children["explode"].info.status == "FAILED"


def test_a_step_failing_after_the_cleanup_hook_fails_its_runs_and_repair_agrees(
    zenml_stack, embedded_client, process_snapshot
):
    from click.testing import CliRunner

    from tests.integration.test_dynamic import wait_for_status
    from tracker_flavor.cli.main import cli

    pipeline = output_not_saved.with_options(settings={"experiment_tracker": {"nested": True}})
    with pytest.raises(RuntimeError, match="unsaveable"):
        pipeline()
    run = Client().get_pipeline("output_not_saved").last_run
    assert run.status == "failed" and run.steps["unsaveable"].status == "failed"
    (parent,), children = runs_of(embedded_client, run.id)
    child = children["unsaveable"]
    # ZenML failed the step after the tracker had ended its runs; the watcher follows ZenML.
    assert wait_for_status(embedded_client, child.info.run_id, "FAILED") == "FAILED"
    assert wait_for_status(embedded_client, parent.info.run_id, "FAILED") == "FAILED"
    assert embedded_client.get_run(parent.info.run_id).data.tags[tags.FAILED_STEP] == "unsaveable"
    assert child.data.metrics == {"computed": 1.0}

    # A process that died before its watcher ran leaves both FINISHED: the repair fixes both.
    for run_id in (parent.info.run_id, child.info.run_id):
        embedded_client.set_terminated(run_id, "FINISHED")
    result = CliRunner().invoke(cli, ["runs", "output_not_saved", "-n", "1", "--repair"])
    assert result.exit_code == 0, result.output
    assert embedded_client.get_run(child.info.run_id).info.status == "FAILED"
    assert embedded_client.get_run(parent.info.run_id).info.status == "FAILED"


def test_runs_with_the_same_name_get_their_own_parents(zenml_stack, embedded_client):
    settings = {"experiment_tracker": {"run_name": "nightly", "experiment_name": "shared"}}
    first = linear.with_options(settings=settings)(count=1)
    second = linear.with_options(settings=settings)(count=2)
    first_parents, _ = runs_of(embedded_client, first.id)
    second_parents, _ = runs_of(embedded_client, second.id)
    assert len(first_parents) == len(second_parents) == 1
    assert first_parents[0].info.run_id != second_parents[0].info.run_id
    assert first_parents[0].info.run_name == second_parents[0].info.run_name == "nightly"
    assert first_parents[0].data.params["produce.count"] == "1"
    assert second_parents[0].data.params["produce.count"] == "2"


def test_parent_and_child_runs_show_who_created_them_and_the_pipeline_source(
    zenml_stack, embedded_client
):
    import getpass

    nested = linear.with_options(settings={"experiment_tracker": {"nested": True}})
    parents, children = runs_of(embedded_client, nested(count=1).id)
    assert len(parents) == 1 and set(children) == {"produce", "consume"}
    for run in [*parents, *children.values()]:
        assert run.info.user_id == getpass.getuser()
        assert {
            "mlflow.user": getpass.getuser(),
            "mlflow.source.name": "tests.integration.pipelines.linear",
            "mlflow.source.type": "JOB",
        }.items() <= run.data.tags.items()


def test_unified_steps_see_the_parent_as_their_active_run(zenml_stack, embedded_client):
    """Steps must not see a placeholder parent with an empty name, started "now"."""
    from tests.integration.pipelines import active_runs

    run = Client().get_pipeline_run(active_runs().id)
    (parent,), _ = runs_of(embedded_client, run.id)
    expected = f"{parent.info.run_name}|{parent.info.start_time}"
    seen = [step.outputs["output"][0].load() for step in run.steps.values()]
    assert seen == [expected, expected]
