"""The parent's outcome rule, the status map and the one writer of parent statuses."""

import threading
import time

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor import tags
from tracker_flavor.settlement import ParentStatuses, final_status, outcome, settle_parent

pytestmark = pytest.mark.unit

DONE, FAILED, RUNNING = ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.RUNNING


class Settler:
    """Records what a settlement writes; each write takes a while, like a request."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.calls: list[tuple[str, ...]] = []

    def set_tag(self, run_id, key, value, synchronous=None):
        self.calls.append(("tag", run_id, key, value))

    def set_terminated(self, run_id, status=None):
        time.sleep(self.seconds)
        self.calls.append(("end", run_id, status))

    def update_run(self, run_id, status=None):
        self.calls.append(("update", run_id, status))


def test_the_last_step_of_a_static_pipeline_finishes_the_parent():
    assert outcome({"a": DONE}, {"a", "b"}, "b", False) == ("FINISHED", None)
    assert outcome({}, {"a", "b"}, "b", False) == ("RUNNING", None)
    assert outcome({"a": RUNNING}, {"a", "b"}, "b", False) == ("RUNNING", None)


def test_a_failed_step_fails_the_parent_and_is_named():
    assert outcome({"a": DONE}, {"a", "b"}, "b", True) == ("FAILED", "b")
    assert outcome({"b": FAILED, "a": FAILED}, {"a", "b", "c"}, "c", False) == ("FAILED", "a")


def test_a_dynamic_pipeline_stays_running_until_a_step_fails():
    assert outcome({"a": DONE}, None, "b", False) == ("RUNNING", None)
    assert outcome({"a": DONE}, None, "b", True) == ("FAILED", "b")


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
    """Issue 10 hazard 2: step threads and the finalizer's thread both wrote it."""
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
