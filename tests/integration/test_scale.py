"""Per-step cost stays flat as a run widens and as its experiment fills up: ZenML store calls
and MLflow requests, counted."""

from collections import Counter
from collections.abc import Iterator

import pytest
from zenml.client import Client

from tests.integration.test_outputs import OFF
from tests.integration.test_performance import active_stack
from testsupport.benchmark_pipelines import bench_fan, bench_linear, bench_map
from testsupport.history import fill
from testsupport.probe import Probe, StepSample, wait_for_watcher
from testsupport.proxy import ARTIFACTS, Proxy
from tracker_flavor.runtime import runtime
from tracker_flavor.tracker import MLflowPlusExperimentTracker
from tracker_flavor.watcher.polling import statuses
from tracker_flavor.watcher.watcher import status_of

pytestmark = pytest.mark.integration

NARROW, WIDE = 4, 16
SMALL, LARGE = 10, 1_000
"""Runs in the experiments of the history test: a listing of the large one would show."""
HISTORY_STEPS = 3


@pytest.fixture(scope="module")
def proxy(zenml_stack, mlflow_server) -> Iterator[Proxy]:
    with Proxy(mlflow_server.url) as proxy, active_stack("scale", f"tracking_uri={proxy.url}"):
        yield proxy


def measure(pipeline, proxy: Proxy, width: int) -> tuple[list[StepSample], int]:
    """Run `pipeline(width=width)`; return its step samples and the MLflow requests it made."""
    probe = Probe(lambda: proxy.total)
    store = type(Client().zen_store)
    with probe.instrumented(MLflowPlusExperimentTracker, store=store), probe.run() as steps:
        before = proxy.total
        # The outputs are sent after each step, on top of the 2-request budget: off here.
        run = pipeline.with_options(settings={"experiment_tracker": OFF})(width=width)
        runtime.watcher.check()  # settle now what the watcher would settle a few seconds later
        requests = proxy.total - before
    assert Client().get_pipeline_run(run.id).status == "completed"
    assert len(steps) == width + 1
    return steps, requests


def per_step(samples: list[StepSample]) -> set[tuple[int, int]]:
    """Return the distinct (store calls, records read) of steps."""
    return {(sample.store_calls, sample.store_records) for sample in samples}


def test_a_wider_map_costs_the_same_per_step(proxy, process_snapshot):
    narrow, narrow_requests = measure(bench_map, proxy, NARROW)
    wide, wide_requests = measure(bench_map, proxy, WIDE)
    # The first step resolves the parent run; a mapped step asks ZenML nothing, at any width.
    assert per_step(narrow[:1]) == per_step(wide[:1])
    assert per_step(narrow[1:]) == per_step(wide[1:]) == {(0, 0)}
    # Mapped steps run at once, so requests are compared per added step. Each has a run of its
    # own: the parent's last-step tag, its creation, its values with its item, its end.
    assert wide_requests - narrow_requests <= 4 * (WIDE - NARROW)


def test_a_wider_fan_out_costs_the_same_per_leaf(proxy, process_snapshot):
    narrow, narrow_requests = measure(bench_fan, proxy, NARROW)
    wide, wide_requests = measure(bench_fan, proxy, WIDE)
    # The local orchestrator launches the leaves one at a time, in order: only the last asks
    # ZenML one count (a page of one), however many leaves there are; the stack's orchestrator
    # is the one ZenML's launcher built (no call)...
    assert per_step(narrow[1:-1]) == per_step(wide[1:-1]) == {(0, 0)}
    assert per_step(narrow[-1:]) == per_step(wide[-1:]) == {(1, 1)}
    # ...and makes the same MLflow requests (the last one also settles the parent run).
    assert {s.requests for s in narrow[1:-1]} == {s.requests for s in wide[1:-1]}
    assert narrow[-1].requests == wide[-1].requests
    # Only the narrow run, the experiment's first, created the experiment.
    assert wide_requests - narrow_requests <= (WIDE - NARROW) * wide[1].requests


def test_the_watcher_reads_all_watched_steps_in_one_call(proxy, process_snapshot):
    run = Client().get_pipeline("bench_fan").last_run
    step_ids = [step.id for step in run.steps.values()]
    probe = Probe(lambda: proxy.total)
    store = Client().zen_store
    with probe.instrumented(store=type(store)), probe.run():
        found = statuses(store, [run.id], step_ids)
    assert probe.store_calls == 2  # the run, then its steps
    assert set(found) == {run.id, *step_ids}
    assert all(status_of(one) == "completed" for one in found.values())


def run_into(experiment: str, proxy: Proxy) -> tuple[Counter[str], Counter[str], list[int]]:
    """Run the linear pipeline into `experiment` with the default settings, until the watcher
    has settled it; return its MLflow requests and response bytes by kind, and the tracker's
    ZenML store calls of each step."""
    probe = Probe(lambda: proxy.total)
    store = type(Client().zen_store)
    requests, answered = proxy.counts()
    with probe.instrumented(MLflowPlusExperimentTracker, store=store), probe.run() as steps:
        settings = {"experiment_tracker": {"experiment_name": experiment}}
        run = bench_linear.with_options(settings=settings)(steps=HISTORY_STEPS)
        wait_for_watcher()
    assert Client().get_pipeline_run(run.id).status == "completed"
    requests_after, answered_after = proxy.counts()
    return requests_after - requests, answered_after - answered, [s.store_calls for s in steps]


def test_a_run_costs_the_same_requests_whatever_the_runs_in_its_experiment(
    proxy, mlflow_server, process_snapshot
):
    backend = mlflow_server.backend_store_uri
    for name, size in (("warm-up", SMALL), ("small", SMALL), ("large", LARGE)):
        fill(backend, f"history-{name}", size)
    run_into("history-warm-up", proxy)  # what the process does once (loading the stack)
    small, small_bytes, small_calls = run_into("history-small", proxy)
    large, large_bytes, large_calls = run_into("history-large", proxy)
    # Each kind of request, as often, with the outputs on (one report per step)...
    assert small == large
    assert small[ARTIFACTS] == HISTORY_STEPS
    # ...answered with about as much: nothing lists the experiment's runs (1,000 runs are ~0.5 MB;
    # the run read back holds more or fewer of its steps' values depending on timing).
    assert large_bytes.total() < 1.5 * small_bytes.total()
    assert small_calls == large_calls
