"""Turn the exceptions of an unreachable or refusing tracking server into one actionable line."""

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tracker_flavor.uris import strip_credentials

if TYPE_CHECKING:
    from tracker_flavor.config import MLflowPlusConfig


class TrackingServerError(RuntimeError):
    """The MLflow tracking server could not be used; the message says why and what to do."""


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


def _credential_fields(config: "MLflowPlusConfig | None") -> str:
    if config is None:
        return "the tracker's credentials"
    methods = config.authentication_methods()
    if not methods:
        return "the credentials: the server wants some, set tracking_token or tracking_username"
    return "/".join(methods[0].split("+"))


def explain(error: BaseException, uri: str, config: "MLflowPlusConfig | None" = None) -> str | None:
    """Return a one-line explanation of why `uri` could not be used, or None if it is not that."""
    where = strip_credentials(uri)
    errors = list(_chain(error))
    names = {type(e).__name__ for e in errors}
    text = " ".join(str(e) for e in errors)
    status = _status(errors)
    timeout = config.connect_timeout_seconds if config else None
    if status == 401:
        return f"authentication to {where} failed (HTTP 401): check {_credential_fields(config)}."
    if status == 403:
        return (
            f"{where} refused access (HTTP 403): the credentials are valid but lack permission "
            "on this experiment; grant it on the server or use another experiment_name."
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
    if names & {"ConnectTimeout", "ReadTimeout", "Timeout", "TimeoutError"}:
        limit = f" within {timeout} s" if timeout else ""
        return (
            f"{where} did not answer{limit}: check the network path, or raise "
            "connect_timeout_seconds."
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
