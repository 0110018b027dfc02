"""Mapped steps and pipeline parameters, against a real server: every value attributable."""

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.scenarios.pipelines import sweep
from tests.integration.test_dynamic import wait_for_status
from tests.integration.test_run_model import runs_of
from tracker_flavor.runs import tags
from tracker_flavor.runs.params import MAX_VALUE_LENGTH

pytestmark = pytest.mark.integration


def test_each_mapped_step_has_its_run_with_its_item_and_the_parent_the_pipeline_params(
    servers, tracker_stack, caplog
):
    tracker_stack("plus_sweep", tracking_uri=servers.plain.url)
    run = Client().get_pipeline_run(sweep(C=0.5).id)
    client = MlflowClient(servers.plain.url)
    (parent,), children = runs_of(client, run.id)
    # Unified mode: the steps that are not mapped log into the parent, each mapped step into a
    # run of its own under it, with its map index and its item.
    assert set(children) == {"map:fit:0", "map:fit:1", "map:fit:2"}
    by_alpha = {}
    for name, child in children.items():
        assert child.data.tags[tags.MAP_INDEX] == name[-1]
        assert child.data.params["max_iter"] == "5"
        by_alpha[child.data.params["alpha"]] = child.data.metrics["score"]
        assert len(client.get_metric_history(child.info.run_id, "score")) == 1
        assert run.steps[name].run_metadata["mlflow_run_id"] == child.info.run_id
    assert by_alpha == {"0.1": 0.9091, "1.0": 0.5, "10.0": 0.0909}
    assert wait_for_status(client, parent.info.run_id, "FINISHED") == "FINISHED"
    assert all(child.info.status == "FINISHED" for child in children.values())
    assert "score" not in parent.data.metrics and parent.data.metrics["best_score"] == 0.9091
    # The pipeline's parameters are on the parent, truncated like step parameters.
    assert parent.data.params["C"] == "0.5"
    assert len(parent.data.params["label"]) == MAX_VALUE_LENGTH
    assert [r for r in caplog.records if "label" in r.getMessage()]


def test_the_parent_has_the_pipeline_params_in_nested_mode(servers, tracker_stack):
    tracker_stack("plus_sweep_nested", tracking_uri=servers.plain.url)
    nested = sweep.with_options(settings={"experiment_tracker": {"nested": True}})
    run = Client().get_pipeline_run(nested(C=0.25, label="short").id)
    (parent,), children = runs_of(MlflowClient(servers.plain.url), run.id)
    assert parent.data.params == {"C": "0.25", "label": "short"}
    assert children["map:fit:1"].data.params == {"alpha": "1.0", "max_iter": "5"}
    assert children["pick"].data.metrics["best_score"] == 0.9091
