"""A client that settles runs with its own credentials, never through the process environment.

MLflow's clients read credentials, TLS options and time limits from `os.environ`, which only the
steps may change (see environment.py). The finalizer settles runs on a thread of its own, after
the steps ended or while other steps, possibly of another tracker, are running; it gets this
client instead, which carries everything in itself.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlflow.utils.rest_utils import MlflowHostCreds

    from tracker_flavor.connection import Connection

SET_TAG = "/api/2.0/mlflow/runs/set-tag"
UPDATE_RUN = "/api/2.0/mlflow/runs/update"


class RunSettler(Protocol):
    """What settling a run needs of a client (an `MlflowClient` has it too)."""

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> Any:
        """Set one tag of a run."""

    def set_terminated(self, run_id: str, status: str | None = None) -> Any:
        """End a run with `status`."""


@dataclass(frozen=True)
class RestSettler:
    """Set tags and statuses of runs on a tracking server over its REST API."""

    creds: "MlflowHostCreds"
    timeout: int
    max_retries: int

    def _post(self, endpoint: str, body: dict[str, Any]) -> None:
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        response = http_request(
            self.creds, endpoint, "POST", json=body,
            max_retries=self.max_retries, backoff_factor=1, backoff_jitter=0,
            timeout=self.timeout,
        )  # fmt: skip
        verify_rest_response(response, endpoint)

    def set_tag(self, run_id: str, key: str, value: Any, synchronous: bool | None = None) -> None:
        """Set one tag of a run."""
        self._post(SET_TAG, {"run_id": run_id, "key": key, "value": str(value)})

    def set_terminated(self, run_id: str, status: str | None = None) -> None:
        """End a run with `status` (FINISHED when not given), now."""
        from mlflow.utils.time import get_current_time_millis

        body = {"run_id": run_id, "status": status or "FINISHED"}
        self._post(UPDATE_RUN, body | {"end_time": get_current_time_millis()})


def detached_client(connection: "Connection") -> RunSettler:
    """Return a client of the connection's store that needs nothing from the environment."""
    if connection.is_remote:
        return RestSettler(
            connection.host_creds(),
            timeout=connection.limits.timeout_seconds,
            max_retries=connection.limits.retries,
        )
    from mlflow import MlflowClient

    # A database or file store: the URI carries all it needs, and the step that asked for the
    # settlement already opened the store in this process (MLflow caches it per URI).
    return MlflowClient(tracking_uri=connection.uri)
