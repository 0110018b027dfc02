"""What MLflow holds, on a real SQLite store: parents found by tag, params in MLflow-sized batches."""

import logging

import pytest
from mlflow import MlflowClient

from tracker_flavor.runs import mlflow_runs as runs
from tracker_flavor.runs import tags

pytestmark = pytest.mark.unit


class Counting(MlflowClient):
    """A real client of a SQLite store that counts its `log_batch` requests."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.batches: list[tuple[int, int]] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        self.batches.append((len(params), len(tags)))
        return super().log_batch(run_id, metrics, params, tags, synchronous=synchronous)


@pytest.fixture
def client(sqlite_uri) -> Counting:
    return Counting(sqlite_uri)


def test_a_deleted_experiment_is_refused_with_the_fix(client):
    client.delete_experiment(runs.experiment_id(client, "gone", None))
    with pytest.raises(ValueError, match="mlflow experiments restore.*experiment_name"):
        runs.experiment_id(client, "gone", None)


def test_the_canonical_parent_is_the_oldest_and_children_are_not_parents(client):
    exp_id = runs.experiment_id(client, "exp", None)
    identity = {tags.PIPELINE_RUN_ID: "zenml-run"}
    first = runs.create_parent(client, exp_id, "the-run", identity)
    # A step's child carries the run tag too, with its step's name.
    runs.create_step_run(client, first, "step", {**identity, tags.STEP_NAME: "step"})
    second = runs.create_parent(client, exp_id, "the-run", identity)
    found = runs.find_parent_runs(client, exp_id, "zenml-run")
    assert [run.info.run_id for run in found] == [first.run_id, second.run_id]
    assert runs.find_parent_runs(client, exp_id, "another-run") == []


def test_params_go_in_batches_of_a_hundred_with_the_tags_once(client):
    exp_id = runs.experiment_id(client, "exp", None)
    run = runs.create_parent(client, exp_id, "r", {})
    params = {f"p{i}": str(i) for i in range(250)}
    runs.log(client, run.run_id, {"t": "v"}, params)
    assert client.batches == [(100, 1), (100, 0), (50, 0)]
    assert client.get_run(run.run_id).data.params == params


def test_a_changed_param_only_warns_and_the_tags_still_land(client, caplog):
    exp_id = runs.experiment_id(client, "exp", None)
    run = runs.create_parent(client, exp_id, "r", {})
    runs.log(client, run.run_id, {}, {"lr": "0.1"})
    with caplog.at_level(logging.WARNING):
        runs.log(client, run.run_id, {"t": "v"}, {"lr": "0.2"})
    assert "were not logged" in caplog.text
    data = client.get_run(run.run_id).data
    assert data.params == {"lr": "0.1"} and data.tags["t"] == "v"
