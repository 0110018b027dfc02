"""The parent run's status from the bounded counts a leaf step reads."""

import pytest

from tracker_flavor.settlement import Counts, decide
from tracker_flavor.status import first_still_failed

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("counts", "expected", "outcome"),
    [
        (Counts(settled=9, failed=None), 10, ("FINISHED", None)),  # the current step is the 10th
        (Counts(settled=8, failed=None), 10, ("RUNNING", None)),
        (Counts(settled=0, failed=None), 1, ("FINISHED", None)),
        (Counts(settled=9, failed="a_step"), 10, ("FAILED", "a_step")),
        (Counts(settled=2, failed="a_step"), 10, ("FAILED", "a_step")),
    ],
)
def test_a_leaf_decides_from_counts(counts, expected, outcome):
    assert decide(counts, expected) == outcome


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
