"""The production topology: REST calls the tracker adds to the ZenML server, and the embedded store
refused on an S3 artifact store. The distributed tests run on it too (distributed/conftest.py)."""

import threading
import uuid
from dataclasses import dataclass

import mlflow
import pytest
from mlflow import MlflowClient
from zenml import pipeline, step
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.exceptions import StackValidationError
from zenml.pipelines.pipeline_definition import Pipeline

from tests.integration.distributed.test_processes import wait_for
from tests.integration.pipelines import linear
from tests.integration.test_run_model import runs_of

pytestmark = pytest.mark.integration

WATCHER_THREAD = "mlflow-plus-watcher"


@step(experiment_tracker=True)
def tracked(x: int) -> int:
    mlflow.log_metric("x", float(x))
    return x + 1


@step(experiment_tracker=False)
def untracked(x: int) -> int:
    return x + 1


def chain(steps: int, with_tracker: bool) -> Pipeline:
    """A pipeline of `steps` steps in a row, all tracked (nested runs) or none."""
    body = tracked if with_tracker else untracked

    @pipeline(
        name=f"chain_{steps}_{'tracked' if with_tracker else 'untracked'}",
        enable_cache=False,
        settings={"experiment_tracker": {"nested": True}},
    )
    def chained() -> None:
        x = 0
        for i in range(steps):
            x = body(x, id=f"step_{i}")

    return chained


@dataclass
class Added:
    calls: int
    """Requests to the ZenML server of a tracked run minus those of the same run untracked,
    without the watcher's."""
    polls: int
    """Requests of the watcher: its polls, settling the MLflow runs and sending the outputs, in
    its thread or in the thread that launched the step."""

    @property
    def in_all(self) -> int:
        return self.calls + self.polls


def added_requests(top, steps: int, monkeypatch) -> Added:
    """Run `chain(steps)` tracked and untracked; count the requests at the server's proxy."""
    from zenml.zen_stores.rest_zen_store import RestZenStore

    from tracker_flavor.watcher.watcher import Watcher

    polls = 0
    request, finish = RestZenStore._request, Watcher.finish
    settling = threading.local()

    def counted(self, *args, **kwargs):
        nonlocal polls
        # The watcher's thread and pool, and its settling of a step in the launching thread.
        watcher = threading.current_thread().name.startswith(WATCHER_THREAD)
        polls += watcher or getattr(settling, "step", False)
        return request(self, *args, **kwargs)

    def finishing(self, *args, **kwargs):
        settling.step = True
        try:
            return finish(self, *args, **kwargs)
        finally:
            settling.step = False

    monkeypatch.setattr(RestZenStore, "_request", counted)
    monkeypatch.setattr(Watcher, "finish", finishing)
    counts, polled = {}, 0
    for with_tracker in (True, False):
        top.zenml_proxy.reset()
        polls = 0
        run = chain(steps, with_tracker)()
        # The watcher ends its thread once it has settled every step and run: then all of this
        # run's requests, polls included, are counted.
        wait_for(lambda: WATCHER_THREAD not in {t.name for t in threading.enumerate()})
        counts[with_tracker] = top.zenml_proxy.total - polls
        polled += polls
        assert Client().get_pipeline_run(run.id).status == "completed"
    monkeypatch.setattr(RestZenStore, "_request", request)
    monkeypatch.setattr(Watcher, "finish", finish)
    return Added(counts[True] - counts[False], polled)


def per_step(small: int, large: int) -> float:
    """Return the requests each step adds, fit on runs of 5 and 8 steps."""
    return (large - small) / (8 - 5)


def test_rest_calls_the_tracker_adds_are_flat_in_steps_and_runs(on_topology, monkeypatch, capsys):
    """The tracker, its watcher included, adds the same few REST calls to any run and step."""
    # The first tracked run of a process also loads the stack's components: measured apart.
    sizes = (2, 5, 8, 2)  # the 2 steps again after 6 more runs
    first, *added = [added_requests(on_topology, steps, monkeypatch) for steps in sizes]
    hooks = per_step(added[0].calls, added[1].calls)
    watcher = per_step(added[0].polls, added[1].polls)
    in_all = per_step(added[0].in_all, added[1].in_all)
    per_run = added[0].in_all - 5 * in_all
    runs = Client().list_pipeline_runs(size=1).total
    with capsys.disabled():
        print(
            f"\nZenML REST calls the tracker adds (nested), fit on 5 and 8 steps: {in_all:g} per "
            f"step ({hooks:g} the hooks', {watcher:g} the watcher's) + {per_run:g} per run; "
            f"2 steps at the end ({runs} runs): {added[2].in_all}; first run of the process "
            f"(2 steps): {first.in_all}.\n| steps | hooks | watcher | in all |\n"
            + "\n".join(
                f"| {n} | {a.calls} | {a.polls} | {a.in_all} |"
                for n, a in zip(sizes[1:3], added[:2], strict=True)
            )
        )
    # Three steps more add three calls in all, each step's link (the hooks'), and none of the
    # watcher's: polling each step, or the run while its steps run here, made its 6 per step,
    # reading the outputs' reports back 1. A call per earlier run would add 6 to the last
    # count. One more or less is timing (a poll of the run, a token).
    assert 0 <= 3 * in_all <= 3 + 1
    assert 3 * watcher <= 1
    assert abs(added[2].in_all - (per_run + 2 * in_all)) <= 2


def test_steps_and_artifacts_cross_the_server_and_s3(on_topology):
    """A run on the topology: ZenML's artifacts in S3, the parent found through REST metadata."""
    run = Client().get_pipeline_run(linear.with_options(settings={
        "experiment_tracker": {"nested": True}})().id)  # fmt: skip
    assert run.status == "completed"
    assert run.steps["consume"].outputs["output"][0].uri.startswith("s3://")
    client = MlflowClient(on_topology.mlflow.url)
    (parent,), children = runs_of(client, run.id)
    assert str(run.run_metadata["mlflow_parent_run_id"]) == parent.info.run_id
    assert set(children) == {"produce", "consume"}
    assert len(client.get_metric_history(children["produce"].info.run_id, "produced")) == 3


def test_embedded_store_on_an_s3_artifact_store_fails_early(on_topology):
    client = Client()
    name = f"no-uri-{uuid.uuid4().hex[:6]}"
    tracker = client.create_stack_component(
        name, "mlflow_plus", StackComponentType.EXPERIMENT_TRACKER, {}
    )
    stack = client.get_stack(on_topology.stack_id)
    components = {kind: [c[0].id] for kind, c in stack.components.items()}
    client.create_stack(
        name, components={**components, StackComponentType.EXPERIMENT_TRACKER: [tracker.id]}
    )
    client.activate_stack(name)
    pipeline_runs = client.list_pipeline_runs(size=1).total
    with pytest.raises(StackValidationError, match="must then be local") as error:
        chain(1, with_tracker=True)()
    assert "set tracking_uri on the tracker" in str(error.value)
    assert client.list_pipeline_runs(size=1).total == pipeline_runs
