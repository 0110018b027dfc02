import logging
import ssl
import sys
import uuid

import pytest
import requests
from mlflow.exceptions import MlflowException
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError

from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.mlflow.errors import (
    STEP_FAILURE_LOGGERS,
    DeferredFailures,
    OneLineErrors,
    TrackingServerError,
    explain,
)
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit


def chained(*errors: BaseException) -> BaseException:
    """Chain `errors` as MLflow's client does: each raised while handling the next."""
    for outer, inner in zip(errors, errors[1:], strict=False):
        outer.__context__ = inner
    return errors[0]


def handshake_error(reason: str) -> BaseException:
    return chained(
        MlflowException(f"API request failed with exception ... (Caused by SSLError({reason}))"),
        requests.exceptions.SSLError(f"Max retries exceeded (Caused by SSLError({reason}))"),
        ssl.SSLError(1, reason),
    )


@pytest.mark.parametrize(
    "reason",
    [
        "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",  # OpenSSL 3.0
        "[SSL] record layer failure (_ssl.c:1000)",  # OpenSSL 3.2+
    ],
)
def test_https_to_a_plain_http_server_says_so_and_not_certificates(reason):
    message = explain(handshake_error(reason), "https://u:pw@mlflow.internal:5000")
    assert message is not None
    assert message.startswith("https://mlflow.internal:5000 speaks plain http, not https")
    assert "use http:// in tracking_uri, or enable TLS on the server" in message
    assert "tracking_insecure_tls" not in message and "pw" not in message


def test_a_certificate_failure_still_points_at_the_certificate_settings():
    error = handshake_error("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                            "self-signed certificate (_ssl.c:1006)")  # fmt: skip
    message = explain(error, "https://mlflow.internal")
    assert message is not None and message.startswith("TLS verification of https://mlflow.internal")


def timed_out(reason: Exception) -> BaseException:
    pool = None
    wrapped = MaxRetryError(pool, "/api", reason)  # type: ignore[arg-type]
    outer = (
        requests.exceptions.ConnectTimeout(wrapped)
        if isinstance(reason, ConnectTimeoutError)
        else requests.exceptions.ConnectionError(wrapped)
    )
    return chained(MlflowException(f"API request failed with exception {outer}"), outer, reason)


def test_a_server_that_never_answers_is_reported_with_the_time_really_waited():
    error = timed_out(ReadTimeoutError(None, "/api", "Read timed out. (read timeout=10)"))  # type: ignore[arg-type]
    message = explain(error, "http://127.0.0.1:5000", limits=RequestLimits(10, 2))
    assert message == (
        "http://127.0.0.1:5000 accepted the connection but did not answer within 32 s (3 attempts "
        "of 10 s plus 2 s backoff): see the server's log (hung or overloaded?) and any proxy on "
        "the way, or raise read_timeout_seconds."
    )
    # Without the limits of the failed requests, no time is claimed.
    assert " within " not in (explain(error, "http://127.0.0.1:5000") or "")


def test_a_connection_that_is_never_accepted_is_told_apart():
    error = timed_out(ConnectTimeoutError(None, "timed out"))  # type: ignore[arg-type]
    message = explain(error, "http://10.0.0.1:5000", limits=RequestLimits(10, 0))
    assert message is not None
    assert message.startswith("http://10.0.0.1:5000 did not accept a connection within 10 s:")


def test_a_deferred_failure_is_raised_once_while_fresh():
    failures, run_id = DeferredFailures(), uuid.uuid4()
    failures.defer(run_id, TrackingServerError("the one line"), fresh_seconds=60)
    with pytest.raises(TrackingServerError, match="^the one line$") as raised:
        failures.raise_deferred(run_id)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    failures.raise_deferred(run_id)  # once only: a retried step tries the server again

    stale = uuid.uuid4()
    failures.defer(stale, TrackingServerError("old"), fresh_seconds=0)
    failures.raise_deferred(stale)


def test_deferred_failures_are_runtime_state_bounded_and_reset():
    from tracker_flavor.concurrency.caches import CACHE_SIZE

    kept = uuid.uuid4()
    runtime.mlflow.deferred.defer(kept, TrackingServerError("kept"), fresh_seconds=60)
    runtime.reset()
    runtime.mlflow.deferred.raise_deferred(kept)  # forgotten: nothing raised
    for _ in range(CACHE_SIZE + 10):  # a long-lived process whose runs never start a step
        error = TrackingServerError("never raised")
        runtime.mlflow.deferred.defer(uuid.uuid4(), error, fresh_seconds=60)
    assert len(runtime.mlflow.deferred) == CACHE_SIZE
    runtime.reset()
    assert len(runtime.mlflow.deferred) == 0


@pytest.fixture
def one_line_errors():
    """Install the one-line output of TrackingServerError, and take it out again."""
    installed = OneLineErrors()
    installed.install()
    yield installed
    installed.uninstall()


@pytest.mark.parametrize("name", STEP_FAILURE_LOGGERS)
def test_zenml_logs_a_failed_step_as_its_one_line_without_the_traceback(
    name, caplog, one_line_errors
):
    for error in (TrackingServerError("the one line"), ValueError("user code")):
        try:
            raise error
        except Exception:
            logging.getLogger(name).exception("Step %s failed.", "train")
    ours, users = caplog.records
    assert ours.exc_info is None and ours.getMessage() == "Step train failed."
    assert users.exc_info is not None  # a user's own error keeps its traceback


def test_an_uncaught_tracking_server_error_is_printed_as_one_line(monkeypatch, capsys):
    printed: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: printed.append(error))
    hooks = OneLineErrors()
    hooks.install()
    hooks.install()  # installed twice, wraps the hook once
    error = TrackingServerError("http://x did not answer")
    sys.excepthook(TrackingServerError, error, None)
    other = ValueError("user code")
    sys.excepthook(ValueError, other, None)
    assert capsys.readouterr().err == "TrackingServerError: http://x did not answer\n"
    assert printed == [other]  # everything else goes to the hook that was there
    hooks.uninstall()
    sys.excepthook(TrackingServerError, error, None)
    assert printed == [other, error]  # taken out, the hook that was there has them all
