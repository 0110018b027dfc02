"""The parent's outcome rule from the bounded counts a leaf reads, the status map and the one
writer of parent statuses."""

import threading
import time
from types import SimpleNamespace
from uuid import uuid4

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor.runs import outcome as outcome_rule
from tracker_flavor.runs import tags
from tracker_flavor.runs.outcome import (
    ParentStatuses,
    decide,
    final_status,
    first_still_failed,
    launches_in_order,
    pipeline_outcome,
    settle_parent,
)

pytestmark = pytest.mark.unit

DONE, FAILED, RUNNING = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.RUNNING


class Settler:
    """Records what a settlement writes; each write takes a while, like a request."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[str, ...]] = []

    def set_tag(self, run_id, key, value, synchronous=None):
        self.calls.append(("tag", run_id, key, value))

    def set_terminated(self, run_id, status=None, end_time=None):
        time.sleep(self.seconds)
        self.calls.append(("end", run_id, status))

    def update_run(self, run_id, status=None):
        self.calls.append(("update", run_id, status))


def test_zenml_statuses_map_to_mlflow_once_finished():
    assert final_status(DONE) == "FINISHED"
    assert final_status(ExecutionStatus.CACHED) == "FINISHED"
    assert final_status(FAILED) == "FAILED"
    assert final_status(RUNNING) is None


def test_settle_parent_writes_only_what_differs():
    settler = Settler()
    assert not settle_parent(settler, "p", "FAILED", "b", current="FAILED", current_failed_step="b")
    assert settler.calls == []
    assert not settle_parent(settler, "p", "FAILED", "b", current="FAILED")
    assert settler.calls == [("tag", "p", tags.FAILED_STEP, "b")]
    assert settle_parent(settler, "p", "FINISHED", None, current="RUNNING")
    assert settler.calls[-1] == ("end", "p", "FINISHED")


def test_concurrent_settlements_write_the_parent_status_once():
    """Step threads and the watcher's thread may settle the same parent at once."""
    settler, statuses = Settler(seconds=0.05), ParentStatuses()
    threads = [
        threading.Thread(target=statuses.settle, args=(settler, ("u", "p"), "FINISHED", None))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert settler.calls == [("end", "p", "FINISHED")]


def test_a_finished_parent_is_reopened_when_its_run_runs_again():
    settler, statuses = Settler(), ParentStatuses()
    statuses.reopen(settler, ("u", "p"), "FINISHED")
    statuses.reopen(settler, ("u", "p"), None)
    assert settler.calls == [("update", "p", "RUNNING")]
    statuses.settle(settler, ("u", "p"), "FINISHED", None)
    assert settler.calls[-1] == ("end", "p", "FINISHED")


def test_known_statuses_are_bounded():
    settler, statuses = Settler(), ParentStatuses(size=2)
    for run in "abc":
        statuses.settle(settler, ("u", run), "FINISHED", None)
    statuses.settle(settler, ("u", "a"), "FINISHED", None)  # forgotten: written again
    assert [call[1] for call in settler.calls] == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    ("settled", "expected", "outcome"),
    [
        (9, 10, "FINISHED"),  # the current step is the 10th
        (8, 10, "RUNNING"),  # a step is still to come, or failed (it fails the parent itself)
        (0, 1, "FINISHED"),
    ],
)
def test_a_leaf_decides_from_the_count_of_settled_steps(settled, expected, outcome):
    assert decide(settled, expected) == outcome


class Attempt:
    """A step run as ZenML lists it: a name and an attempt number."""

    def __init__(self, name: str, version: int) -> None:
        self.name, self.version = name, version


class Page:
    def __init__(self, *items: Attempt) -> None:
        self.items = list(items)


@pytest.mark.parametrize(
    ("newest", "expected"),
    [
        ({"a": 1, "b": 1}, "a"),  # no newer attempt: `a` failed
        ({"a": 2, "b": 1}, "b"),  # `a` was launched again: its failure no longer counts
        ({"a": 2, "b": 3}, None),
    ],
)
def test_a_failed_step_launched_again_does_not_count(newest, expected):
    def page(size, sort_by, name):
        return Page(Attempt(name, newest[name]))

    failed = [Attempt("a", 1), Attempt("b", 1)]
    assert first_still_failed(failed, page) == expected


def fan_out(*leaves: str) -> SimpleNamespace:
    """A static snapshot of `root` and its leaves, in the order the orchestrator lists them."""
    specs = [SimpleNamespace(name="root", upstream_steps=[])]
    specs += [SimpleNamespace(name=leaf, upstream_steps=["root"]) for leaf in leaves]
    return SimpleNamespace(
        is_dynamic=False,
        pipeline_spec=SimpleNamespace(steps=specs),
        step_configurations={spec.name: None for spec in specs},
    )


@pytest.fixture
def counts(monkeypatch) -> list[object]:
    """The runs whose settled steps the rule asked ZenML to count (each answers 3)."""
    asked: list[object] = []
    monkeypatch.setattr(outcome_rule, "settled_steps", lambda run_id: asked.append(run_id) or 3)
    return asked


def test_a_leaf_launched_before_others_in_order_asks_zenml_nothing(counts):
    snapshot, run_id = fan_out("a", "b", "c"), uuid4()
    assert pipeline_outcome(run_id, snapshot, "a", False, lambda _: True) == ("RUNNING", None)
    assert pipeline_outcome(run_id, snapshot, "root", False, lambda _: True) == ("RUNNING", None)
    assert counts == []

    # The last in the order asks, whatever the orchestrator: a step may have run elsewhere.
    def unasked(_):
        raise AssertionError("the last step needs no orchestrator")

    assert pipeline_outcome(run_id, snapshot, "c", False, unasked) == ("FINISHED", None)
    assert counts == [run_id]


def test_a_leaf_of_an_orchestrator_launching_steps_at_once_asks_zenml(counts):
    snapshot, run_id = fan_out("a", "b"), uuid4()
    assert pipeline_outcome(run_id, snapshot, "a", False, lambda _: False) == ("FINISHED", None)
    assert counts == [run_id]
    assert pipeline_outcome(run_id, snapshot, "a", True, lambda _: True) == ("FAILED", "a")


@pytest.mark.parametrize(("flavor", "in_order"), [("local", True), ("kubernetes", False)])
def test_only_the_local_orchestrator_launches_steps_in_order(flavor, in_order):
    stack = SimpleNamespace(orchestrator=SimpleNamespace(flavor=flavor))
    assert launches_in_order(stack) is in_order  # type: ignore[arg-type]
