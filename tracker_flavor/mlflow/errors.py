"""Turn the exceptions of an unreachable or refusing tracking server into one actionable line."""

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.config.uris import redact_credentials, strip_credentials

if TYPE_CHECKING:
    from tracker_flavor.config.component import MLflowPlusConfig
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.mlflow.quiet import RequestNoise


class TrackingServerError(RuntimeError):
    """The MLflow tracking server could not be used; the message says why and what to do."""


STEP_FAILURE_LOGGERS = (
    "zenml.orchestrators.local.local_orchestrator",
    "zenml.orchestrators.dag_runner",
    "zenml.execution.pipeline.dynamic.runner",
)
"""The ZenML loggers that log a failed step with its traceback (`logger.exception`); ZenML has
logged the step's error message on its own line just before."""


class OneLineErrors(logging.Filter):
    """Show a TrackingServerError as its one line: its traceback shows only ZenML's frames.

    A step run as its own process (Kubernetes, Kubeflow, Airflow pods) ends with the step's
    exception uncaught, which ZenML's rich traceback hook prints as some 150 lines of ZenML's
    frames around it; ZenML's step-failure loggers add the same traceback.
    """

    def __init__(self) -> None:
        super().__init__()
        self._previous_hook: Any = None

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the traceback of a logged TrackingServerError."""
        if record.exc_info and isinstance(record.exc_info[1], TrackingServerError):
            record.exc_info = record.exc_text = None
        return True

    def _hook(
        self, kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        if isinstance(error, TrackingServerError):
            print(f"{kind.__name__}: {error}", file=sys.stderr)
        else:  # after an uninstall, a hook that wrapped this one still calls it
            (self._previous_hook or sys.__excepthook__)(kind, error, tb)

    def install(self) -> None:
        """Wrap the process's exception hook (ZenML's, once ZenML is imported) and its loggers."""
        if self._previous_hook is None:
            self._previous_hook = sys.excepthook
            sys.excepthook = self._hook
        for name in STEP_FAILURE_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        """Put back the exception hook and take the filter off the loggers."""
        if self._previous_hook is not None and sys.excepthook == self._hook:
            sys.excepthook = self._previous_hook
        self._previous_hook = None
        for name in STEP_FAILURE_LOGGERS:
            logging.getLogger(name).removeFilter(self)


class DeferredFailures:
    """A pipeline run's first failure, kept for its first step instead of reported twice.

    ZenML asks for the run's metadata just before it starts the run's first step in the same
    process, and only warns when that fails: the step would wait for the server all over again
    and then print the same line. A step starting later than `fresh_seconds` tries for itself.
    """

    def __init__(self) -> None:
        self._failures: BoundedCache[UUID, tuple[str, float]] = BoundedCache()

    def defer(self, run_id: UUID, error: TrackingServerError, fresh_seconds: float) -> None:
        """Keep the run's failure for its first step."""
        self._failures.put(run_id, (str(error), time.monotonic() + fresh_seconds))

    def raise_deferred(self, run_id: UUID) -> None:
        """Raise the failure kept for this pipeline run, once, while it is fresh."""
        message, fresh_until = self._failures.pop(run_id) or ("", 0.0)
        if time.monotonic() < fresh_until:
            raise TrackingServerError(message)

    def __len__(self) -> int:
        return len(self._failures)


_STATUS = re.compile(r"error code (\d{3})|too many (\d{3}) error responses")
_ERROR_CODE_STATUS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(errors: list[BaseException]) -> int | None:
    for error in errors:
        if code := _ERROR_CODE_STATUS.get(str(getattr(error, "error_code", ""))):
            return code
        if match := _STATUS.search(str(error)):
            return int(match[1] or match[2])
    return None


def _credential_fields(config: "MLflowPlusConfig | None", source: str | None) -> str:
    if source:
        return source
    if config is None:
        return "the tracker's credentials"
    methods = config.authentication_methods()
    if not methods:
        return "the credentials: the server wants some, set tracking_token or tracking_username"
    return "/".join(methods[0].split("+"))


_TIMEOUTS = {
    "ConnectTimeout", "ConnectTimeoutError", "ReadTimeout", "ReadTimeoutError", "Timeout",
    "TimeoutError",
}  # fmt: skip
# OpenSSL's words when the server answers a TLS handshake in plain text.
_PLAIN_HTTP_ANSWER = re.compile(
    r"wrong version number|record layer failure|packet length too long|unknown protocol", re.I
)


def explain(
    error: BaseException,
    uri: str,
    config: "MLflowPlusConfig | None" = None,
    limits: RequestLimits | None = None,
    credentials: str | None = None,
) -> str | None:
    """Return a one-line explanation of why `uri` could not be used, or None if it is not that.

    `limits` are those of the requests that failed; a timeout message states their real bound.
    `credentials` says where the refused credentials came from (a connection's source).
    """
    where = strip_credentials(uri)
    errors = list(_chain(error))
    names = {type(e).__name__ for e in errors}
    text = " ".join(str(e) for e in errors)
    status = _status(errors)
    if status == 401:
        fields = _credential_fields(config, credentials)
        return f"authentication to {where} failed (HTTP 401): check {fields}."
    if status == 403:
        return (
            f"{where} refused access (HTTP 403): the credentials are valid but lack permission "
            "on this experiment; grant it on the server or use another experiment_name."
        )
    if urlsplit(uri).scheme.lower() == "https" and (match := _PLAIN_HTTP_ANSWER.search(text)):
        return (
            f"{where} speaks plain http, not https (the TLS handshake got a plain-text answer: "
            f"{match[0].lower()}): use http:// in tracking_uri, or enable TLS on the server."
        )
    if "SSLError" in names or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS verification of {where} failed ({_reason(text, 'certificate verify failed')}): "
            "set tracking_ca_bundle to the CA that signed the server's certificate, or "
            "tracking_insecure_tls=True to skip verification."
        )
    if "NameResolutionError" in names or "gaierror" in names:
        return f"the host of {where} could not be found (DNS): check tracking_uri."
    if "ConnectionRefusedError" in names or "Connection refused" in text:
        return (
            f"could not connect to {where}: connection refused. Is the server running there? "
            "(`zenml-mlflow server start` starts a local one.)"
        )
    if names & _TIMEOUTS:
        within = f" within {limits.describe()}" if limits else ""
        if names & {"ConnectTimeout", "ConnectTimeoutError"}:
            return (
                f"{where} did not accept a connection{within}: check host, port and the network "
                "path (a firewall drops it?), or raise connect_timeout_seconds."
            )
        return (
            f"{where} accepted the connection but did not answer{within}: see the server's log "
            "(hung or overloaded?) and any proxy on the way, or raise read_timeout_seconds."
        )
    if status is not None and status >= 500:
        return (
            f"the MLflow server at {where} failed (HTTP {status}) after retries: see the "
            "server's log."
        )
    if status == 404:
        return (
            f"{where} answered HTTP 404 to the MLflow API: it is not an MLflow tracking server, "
            "or tracking_uri lacks a path prefix the server is mounted under."
        )
    return None


def _reason(text: str, default: str) -> str:
    match = re.search(r"certificate verify failed: ([^(\)\"']+)", text)
    return f"certificate verify failed: {match[1].strip()}" if match else default


@contextmanager
def explained(
    connection: "Connection", noise: "RequestNoise", config: "MLflowPlusConfig | None" = None
) -> Iterator[None]:
    """Turn a failure of the connection's store inside the block into a TrackingServerError."""
    try:
        with noise.tracker_requests():
            yield
    except Exception as error:
        source = connection.credentials_source
        if message := explain(error, connection.uri, config, connection.limits, source):
            raise TrackingServerError(message) from None
        if (text := str(error)) != (clean := redact_credentials(text)):
            raise TrackingServerError(clean) from None  # MLflow's message names the URI
        raise
