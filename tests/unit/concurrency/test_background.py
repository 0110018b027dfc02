"""Work started on a thread of its own hands back its result or its error."""

import threading

import pytest

from tracker_flavor.concurrency.background import started

pytestmark = pytest.mark.unit


def test_the_work_runs_on_its_own_thread_and_returns_its_result():
    future = started(lambda: threading.current_thread().name, "elsewhere")
    assert future.result(timeout=10) == "elsewhere"


def test_the_work_s_error_is_raised_where_the_result_is_taken():
    def fail() -> None:
        raise KeyError("lost")

    with pytest.raises(KeyError, match="lost"):
        started(fail, "failing").result(timeout=10)
