"""Sending a step's outputs: a dataset another writer created meanwhile is recorded on a retry."""

import threading

import pytest

from tracker_flavor.watcher.publisher import DATASET_TRIES, log_inputs

pytestmark = pytest.mark.unit

CONFLICT = (
    "BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
    "datasets.experiment_id, datasets.name, datasets.digest"
)


class Failing:
    """A publisher whose first `log_inputs` calls fail with the given messages."""

    def __init__(self, *errors: str) -> None:
        self.errors, self.calls = list(errors), 0

    def log_inputs(self, run_id, datasets):
        self.calls += 1
        if self.errors:
            raise RuntimeError(self.errors.pop(0))


def test_a_concurrent_insert_of_the_same_dataset_is_tried_again():
    publisher = Failing(CONFLICT)
    log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == 2


def test_other_errors_and_endless_conflicts_are_raised():
    publisher = Failing("PERMISSION_DENIED: no")
    with pytest.raises(RuntimeError, match="PERMISSION_DENIED"):
        log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == 1
    publisher = Failing(*[CONFLICT] * DATASET_TRIES)
    with pytest.raises(RuntimeError, match="UNIQUE"):
        log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == DATASET_TRIES
