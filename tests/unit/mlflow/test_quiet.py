import logging
import threading
import warnings

import pytest
from urllib3.exceptions import InsecureRequestWarning

from tracker_flavor.mlflow.quiet import RequestNoise

pytestmark = pytest.mark.unit

RETRYING = "Retrying (%r) after connection broken by '%r': %s"


def retry_line() -> None:
    logging.getLogger("urllib3.connectionpool").warning(RETRYING, "Retry(total=1)", "err", "/x")


@pytest.fixture
def noise():
    """A request-noise filter installed for the test."""
    installed = RequestNoise()
    installed.install()
    yield installed
    installed.uninstall()


def test_retry_lines_are_left_out_only_for_the_tracker_requests_of_this_thread(caplog, noise):
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        with noise.tracker_requests():
            retry_line()
            other = threading.Thread(target=retry_line)
            other.start()
            other.join()
            logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
        retry_line()
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == [
        "Retrying",  # another thread's request
        "Connection",
        "Retrying",  # after the block
    ]


def unverified(host: str) -> None:
    warnings.warn(
        f"Unverified HTTPS request is being made to host '{host}'. Adding certificate "
        "verification is strongly advised.",
        InsecureRequestWarning,
        stacklevel=1,
    )


def test_the_unverified_warning_is_left_out_for_the_trackers_host_only():
    noise = RequestNoise()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as urllib3 sets it for its security warnings
        noise.skip_unverified_warnings("https://mlflow.internal:8443/prefix")
        unverified("mlflow.internal")
        unverified("mlflow.internal.evil.com")
        unverified("other.example.com")
    assert [str(w.message).split("'")[1] for w in caught] == [
        "mlflow.internal.evil.com",
        "other.example.com",
    ]


def test_taken_out_the_filters_leave_every_warning_and_retry_line(caplog):
    noise = RequestNoise()
    noise.install()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        noise.skip_unverified_warnings("https://mlflow.internal:8443/prefix")
        noise.uninstall()
        unverified("mlflow.internal")
    assert len(caught) == 1
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        with noise.tracker_requests():
            retry_line()
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["Retrying"]


def test_the_host_filter_holds_in_a_filter_list_swapped_in_after_it_was_first_set():
    noise = RequestNoise()
    noise.skip_unverified_warnings("https://mlflow.internal")  # an earlier step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as a test's or a library's own warning capture does
        noise.skip_unverified_warnings("https://mlflow.internal")  # the next step's start
        unverified("mlflow.internal")
    noise.uninstall()
    assert caught == []


def test_mlflows_sdk_fallback_warning_is_left_out_only_for_the_tracker_requests(caplog, noise):
    databricks = logging.getLogger("mlflow.utils.databricks_utils")
    line = "Failed to create databricks SDK workspace client, error: %r. Falling back to legacy"
    with caplog.at_level(logging.WARNING, logger=databricks.name):
        with noise.tracker_requests():
            databricks.warning(line, "no credentials")
        databricks.warning(line, "no credentials")
    assert len(caplog.records) == 1
