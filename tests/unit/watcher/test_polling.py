"""The watcher polls quickly at first, then ever less often; steps are read a hundred at once."""

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

    def get_run(self, run_id, hydrate):
        self.calls.append("get_run")
        assert hydrate is False
        if run_id in self.deleted:
            raise KeyError(f"No pipeline run with ID {run_id} found")
        return SimpleNamespace(status=ExecutionStatus.RUNNING)

    def list_run_steps(self, step_filter):
        self.calls.append("list_run_steps")
        ids = json.loads(step_filter.id.removeprefix("oneof:"))
        assert step_filter.size == len(ids)
        items = [SimpleNamespace(id=uuid.UUID(i), status=ExecutionStatus.COMPLETED) for i in ids]
        return SimpleNamespace(items=items)


def test_statuses_cost_a_call_per_run_and_one_per_hundred_steps():
    store = Store()
    run_ids = [uuid.uuid4() for _ in range(2)]
    step_ids = [uuid.uuid4() for _ in range(250)]
    found = statuses(store, run_ids, step_ids)
    assert store.calls == ["get_run"] * 2 + ["list_run_steps"] * 3
    assert set(found) == {*run_ids, *step_ids}


def test_a_deleted_run_is_left_out_not_an_error_for_the_others():
    deleted, kept = uuid.uuid4(), uuid.uuid4()
    found = statuses(Store(deleted), [deleted, kept], [])
    assert set(found) == {kept}
