"""The one REST client of a tracking server that needs nothing from the process environment.

MLflow's clients read credentials, TLS options and time limits from `os.environ`, which only the
steps may change (see environment.py). The watcher settles runs and sends outputs on a thread of
its own, after the steps ended or while other steps, possibly of another tracker, are running;
it uses this client, which carries the connection's address, credentials and limits in itself.
"""

from typing import TYPE_CHECKING, Any, Protocol

from tracker_flavor.config.limits import BACKOFF_FACTOR

if TYPE_CHECKING:
    from tracker_flavor.mlflow.connection import Connection

SET_TAG = "/api/2.0/mlflow/runs/set-tag"
UPDATE_RUN = "/api/2.0/mlflow/runs/update"


class RunSettler(Protocol):
    """What settling a run needs of a client (an `MlflowClient` has it too)."""

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        """Set one tag of a run."""

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> Any:
        """End a run with `status` at `end_time` (milliseconds; now when not given)."""


class RestClient:
    """A tracking server over its REST API, with the connection's credentials and time limits."""

    def __init__(self, connection: "Connection") -> None:
        self.connection = connection

    def request(self, method: str, endpoint: str, host: str | None = None, **body: Any) -> Any:
        """Send one request as MLflow's client does, within the connection's limits; return JSON.

        `host` sends it to another base URL with the same credentials (the artifact proxy).
        """
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        creds = self.connection.host_creds()
        if host:
            creds.host = host
        limits = self.connection.limits
        response = http_request(
            creds, endpoint, method,
            max_retries=limits.retries, backoff_factor=BACKOFF_FACTOR, backoff_jitter=0,
            timeout=limits.timeout_seconds, **body,
        )  # fmt: skip
        verify_rest_response(response, endpoint)
        return response.json() if response.content else {}

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        """Set one tag of a run."""
        self.request("POST", SET_TAG, json={"run_id": run_id, "key": key, "value": str(value)})

    def set_terminated(
        self, run_id: str, status: str | None = None, end_time: int | None = None
    ) -> None:
        """End a run with `status` (FINISHED when not given) at `end_time` (now when not given)."""
        from mlflow.utils.time import get_current_time_millis

        body = {"run_id": run_id, "status": status or "FINISHED"}
        self.request(
            "POST", UPDATE_RUN, json=body | {"end_time": end_time or get_current_time_millis()}
        )


def settler(connection: "Connection") -> RunSettler:
    """Return a client of the connection's store that needs nothing from the environment."""
    if connection.is_remote:
        return RestClient(connection)
    from mlflow import MlflowClient

    # A database or file store: the URI carries all it needs, and the step that asked for the
    # settlement already opened the store in this process (MLflow caches it per URI).
    return MlflowClient(tracking_uri=connection.uri)
