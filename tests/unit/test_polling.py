"""The watcher polls quickly at first, then ever less often; steps are read in chunks."""

import uuid

import pytest

from tracker_flavor.polling import FIRST_SECONDS, LAST_SECONDS, chunks, poll_interval

pytestmark = pytest.mark.unit


def test_polls_slow_down_up_to_a_bound():
    intervals = [poll_interval(seconds) for seconds in (0, 5, 10, 20, 600, 86400)]
    assert intervals[0] == FIRST_SECONDS
    assert intervals == sorted(intervals)
    assert intervals[-3:] == [LAST_SECONDS] * 3
    assert poll_interval(-1) == FIRST_SECONDS  # a clock step back


def test_step_ids_are_read_a_hundred_at_a_time():
    ids = [uuid.uuid4() for _ in range(250)]
    assert [len(chunk) for chunk in chunks(ids)] == [100, 100, 50]
    assert [i for chunk in chunks(ids) for i in chunk] == ids
    assert list(chunks([])) == []
