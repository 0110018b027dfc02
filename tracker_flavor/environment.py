"""The MLflow client environment of the process while steps run, and its exact restoration.

MLflow keeps the tracking URI and its `MLFLOW_*`/`DATABRICKS_*` settings per process, while ZenML
may run several steps of one tracker at once on a thread pool. The first step to enter applies
the environment and saves what was there; the last one to leave puts it back, so nothing (and no
credential) outlives the steps.
"""

import os
import threading
from collections.abc import Mapping

from tracker_flavor import internals

MANAGED_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER",
    "MLFLOW_ENABLE_DB_SDK",
    "MLFLOW_ENABLE_ASYNC_LOGGING",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "MLFLOW_ALLOW_FILE_STORE",
    "DATABRICKS_HOST",
    "DATABRICKS_USERNAME",
    "DATABRICKS_PASSWORD",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_AUTH_TYPE",
)


class ProcessEnvironment:
    """A reference-counted MLflow client environment for the current process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._tracking_uri: str | None = None
        self._saved_variables: dict[str, str | None] = {}
        self._saved_tracking_uri: str | None = None

    def enter(self, tracking_uri: str, variables: Mapping[str, str]) -> None:
        """Point MLflow at `tracking_uri` with `variables` set, until the matching `leave`."""
        with self._lock:
            if self._depth == 0:
                self._saved_variables = {name: os.environ.get(name) for name in MANAGED_VARIABLES}
                self._saved_tracking_uri = internals.process_tracking_uri()
                for name in MANAGED_VARIABLES:
                    os.environ.pop(name, None)
                self._tracking_uri = tracking_uri
                internals.set_process_tracking_uri(tracking_uri)
            elif tracking_uri != self._tracking_uri:
                raise RuntimeError(
                    "two MLflow trackers with different tracking URIs are running steps in one "
                    "process at the same time; use one tracker per pipeline, or run the steps "
                    "in separate processes."
                )
            # Later entries refresh the variables, so a rotated secret takes effect.
            os.environ.update(variables)
            self._depth += 1

    def leave(self) -> None:
        """Undo one `enter`; the last one restores the variables and tracking URI saved first."""
        with self._lock:
            if self._depth == 0:
                return
            self._depth -= 1
            if self._depth:
                return
            internals.set_process_tracking_uri(self._saved_tracking_uri)
            for name, value in self._saved_variables.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._tracking_uri = None


process_environment = ProcessEnvironment()
