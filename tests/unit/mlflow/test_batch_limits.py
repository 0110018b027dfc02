"""MLflow's batch limits, and the one way values are cut to fit them."""

import pytest
from mlflow.utils import validation

from tracker_flavor.mlflow.batch_limits import (
    MAX_PARAMS,
    MAX_REQUEST_BYTES,
    MAX_TAGS,
    MAX_VALUES,
    batches,
)

pytestmark = pytest.mark.unit


def test_the_batch_limits_are_mlflows():
    assert MAX_VALUES == validation.MAX_ENTITIES_PER_BATCH
    assert MAX_PARAMS == MAX_TAGS == validation.MAX_PARAMS_TAGS_PER_BATCH
    assert MAX_REQUEST_BYTES < validation.MAX_BATCH_LOG_REQUEST_SIZE


def test_items_are_cut_in_consecutive_slices_of_at_most_the_size():
    items = list(range(250))
    assert [len(part) for part in batches(items, 100)] == [100, 100, 50]
    assert [i for part in batches(items, 100) for i in part] == items
    assert list(batches([], 100)) == []
