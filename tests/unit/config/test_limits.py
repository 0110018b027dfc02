import pytest

from tracker_flavor.config.limits import RequestLimits

pytestmark = pytest.mark.unit


def test_the_bound_counts_every_attempt_and_urllib3s_backoff():
    # urllib3 sleeps 0 s after the first failure, then factor * 2**(failures - 1).
    assert RequestLimits(10, 2).bound_seconds() == 3 * 10 + 2
    assert RequestLimits(10, 3).bound_seconds() == 4 * 10 + 2 + 4
    assert RequestLimits(10, 0).bound_seconds() == 10


def test_long_backoffs_stop_at_urllib3s_maximum():
    assert RequestLimits(1, 10).backoff_seconds() == 2 + 4 + 8 + 16 + 32 + 64 + 120 + 120 + 120


def test_the_bound_is_described_with_its_parts():
    assert RequestLimits(10, 2).describe() == "32 s (3 attempts of 10 s plus 2 s backoff)"
    assert RequestLimits(7, 0).describe() == "7 s"


def test_the_variables_set_the_limits_the_bound_assumes():
    assert RequestLimits(5, 1).variables() == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
    }
