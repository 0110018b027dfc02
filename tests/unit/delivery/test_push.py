"""The rules of a push: parents before children, only missing points, requests within limits."""

import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunTag

from tracker_flavor.delivery import push
from tracker_flavor.mlflow import internals
from tracker_flavor.mlflow.batch_limits import MAX_PARAMS, MAX_TAGS, MAX_VALUES

pytestmark = pytest.mark.unit


def run(run_id: str, parent: str | None = None) -> Run:
    info = internals.run_info(
        run_id=run_id, experiment_id="1", user_id="", status="FINISHED", start_time=0,
        end_time=None, lifecycle_stage="active", run_name=run_id,
    )  # fmt: skip
    run_tags = [RunTag("mlflow.parentRunId", parent)] if parent else []
    return Run(info, RunData(tags=run_tags))


def test_every_run_comes_after_its_parent():
    runs = [
        run("step", "pipeline"),
        run("pipeline", "sweep"),
        run("other", "elsewhere"),
        run("sweep"),
    ]
    ordered = [r.info.run_id for r in push.parents_first(runs)]
    assert ordered.index("sweep") < ordered.index("pipeline") < ordered.index("step")
    assert set(ordered) == {"step", "pipeline", "other", "sweep"}
    looped = push.parents_first([run("a", "b"), run("b", "a")])  # a broken store: no hang
    assert len(looped) == 2


def test_requests_stay_within_mlflows_batch_limits_and_keep_every_value():
    metrics = [Metric("m", float(i), i, i) for i in range(2500)]
    params = [Param(f"p{i}", "v") for i in range(150)]
    run_tags = [RunTag(f"t{i}", "v") for i in range(30)]
    sent = list(push.requests(metrics, params, run_tags))
    for m, p, t in sent:
        assert (
            len(p) <= MAX_PARAMS and len(t) <= MAX_TAGS and len(m) + len(p) + len(t) <= MAX_VALUES
        )
    assert [v for m, _, _ in sent for v in m] == metrics
    assert [v for _, p, _ in sent for v in p] == params
    assert [v for _, _, t in sent for v in t] == run_tags
    assert len(sent) == 3
    assert list(push.requests([], [], [])) == []


def test_a_complete_copy_wins_and_duplicates_of_a_twice_sent_creation_are_strays(sqlite_uri):
    from mlflow import MlflowClient

    from tracker_flavor.runs import tags

    client = MlflowClient(sqlite_uri)
    exp = client.create_experiment("pushed")

    def made(source: str, complete: bool = False, deleted: bool = False) -> str:
        run_tags = {tags.PUSH_SOURCE: source, **({tags.PUSH_COMPLETE: "true"} if complete else {})}
        run_id = client.create_run(exp, tags=run_tags).info.run_id
        if deleted:
            client.delete_run(run_id)
        return run_id

    made("a", deleted=True)  # an earlier copy the user deleted: neither chosen nor a stray
    twice = made("a")
    complete = made("a", complete=True)
    both = {made("b"), made("b")}
    chosen, strays = push.copies(client, exp)
    assert chosen["a"].info.run_id == complete and chosen["b"].info.run_id in both
    assert sorted(strays) == sorted([twice, *(both - {chosen["b"].info.run_id})])
