"""The watcher polls quickly at first, then ever less often; runs and steps are read a hundred
at once."""

import json
import uuid
from types import SimpleNamespace

import pytest
from zenml.enums import ExecutionStatus

from tracker_flavor.watcher.polling import (
    FIRST_SECONDS,
    LAST_SECONDS,
    poll_interval,
    statuses,
)

pytestmark = pytest.mark.unit


def test_polls_slow_down_up_to_a_bound():
    intervals = [poll_interval(seconds) for seconds in (0, 5, 10, 20, 600, 86400)]
    assert intervals[0] == FIRST_SECONDS
    assert intervals == sorted(intervals)
    assert intervals[-3:] == [LAST_SECONDS] * 3
    assert poll_interval(-1) == FIRST_SECONDS  # a clock step back


class Store:
    """A ZenML store answering status reads, counting its calls."""

    def __init__(self, *deleted: uuid.UUID) -> None:
        self.calls: list[str] = []
        self.deleted = deleted

    def _page(self, call: str, found_filter, status: ExecutionStatus) -> SimpleNamespace:
        self.calls.append(call)
        ids = json.loads(found_filter.id.removeprefix("oneof:"))
        assert found_filter.size == len(ids)
        return SimpleNamespace(
            items=[
                SimpleNamespace(id=uuid.UUID(i), status=status)
                for i in ids
                if uuid.UUID(i) not in self.deleted
            ]
        )

    def list_runs(self, runs_filter):
        return self._page("list_runs", runs_filter, ExecutionStatus.RUNNING)

    def list_run_steps(self, step_filter):
        return self._page("list_run_steps", step_filter, ExecutionStatus.COMPLETED)


def test_statuses_cost_a_call_per_hundred_runs_and_one_per_hundred_steps():
    store = Store()
    run_ids = [uuid.uuid4() for _ in range(120)]
    step_ids = [uuid.uuid4() for _ in range(250)]
    found = statuses(store, run_ids, step_ids)
    assert store.calls == ["list_runs"] * 2 + ["list_run_steps"] * 3
    assert set(found) == {*run_ids, *step_ids}
    assert found[run_ids[0]] == ExecutionStatus.RUNNING
    assert found[step_ids[0]].id == step_ids[0]  # the step run itself, outputs and all


def test_a_deleted_run_is_left_out_not_an_error_for_the_others():
    deleted, kept = uuid.uuid4(), uuid.uuid4()
    found = statuses(Store(deleted), [deleted, kept], [])
    assert set(found) == {kept}
