"""The MLflow client environment of the process while steps run, and its exact restoration.

MLflow keeps the tracking URI and its `MLFLOW_*`/`DATABRICKS_*` settings per process, while ZenML
may run several steps of one tracker at once on a thread pool. The first step to enter applies
the environment and saves what was there; the last one to leave puts it back, so nothing (and no
credential) outlives the steps. Run variables a platform set for its own run (`MLFLOW_RUN_ID`,
...) are cleared the same way, so a step's `mlflow.start_run` never picks them up.

No credential of a tracking server is among the variables: the connection's credentials are held
in memory (credentials.py) for the same span, and the variables only name the provider that
hands them to MLflow's requests.
"""

import importlib.util
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from mlflow.environment_variables import MLFLOW_REGISTRY_URI, MLFLOW_TRACKING_AUTH

from tracker_flavor.mlflow.connection import MANAGED_VARIABLES, PROVIDER

if TYPE_CHECKING:
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.mlflow.credentials import ServerCredentials
    from tracker_flavor.mlflow.internals import Internals
    from tracker_flavor.mlflow.quiet import RequestNoise


def named_registry(tracking_uri: str) -> dict[str, str]:
    """Return the registry URI variable that spares each `MlflowClient()` a Spark look-up.

    Without it, MLflow asks an active Spark session for the registry before it falls back to the
    tracking URI; each `mlflow.log_metric` creates two clients, and without PySpark each ask is a
    failed import that searches the path again (about 0.15 ms, most of a call). Naming MLflow's
    own default changes nothing then; with PySpark installed the session is left to answer.
    """
    if importlib.util.find_spec("pyspark") is not None:
        return {}
    return {MLFLOW_REGISTRY_URI.name: tracking_uri}


class ProcessEnvironment:
    """A reference-counted MLflow client environment for the current process."""

    def __init__(
        self, seam: "Internals", noise: "RequestNoise", credentials: "ServerCredentials"
    ) -> None:
        self._seam = seam
        self._noise = noise
        self._credentials = credentials
        self._lock = threading.Lock()
        self._depth = 0
        self._tracking_uri: str | None = None
        self._saved_variables: dict[str, str | None] = {}
        self._saved_tracking_uri: str | None = None
        self._registry: dict[str, str] = {}

    def enter(self, connection: "Connection", extra: Mapping[str, str] | None = None) -> None:
        """Apply the connection's environment (and `extra`) until the matching `leave`.

        With `tracking_insecure_tls`, urllib3's warning per request is off: the tracker warns
        once.
        """
        tracking_uri = connection.uri
        if connection.insecure_tls:
            self._noise.skip_unverified_warnings(tracking_uri)
        variables = {**connection.environment(), **(extra or {})}
        with self._lock:
            if self._depth == 0:
                self._registry = named_registry(tracking_uri)
                self._saved_variables = {name: os.environ.get(name) for name in MANAGED_VARIABLES}
                self._saved_tracking_uri = self._seam.process_tracking_uri()
                for name in MANAGED_VARIABLES:
                    os.environ.pop(name, None)
                before = self._saved_variables[MLFLOW_TRACKING_AUTH.name]
                self._credentials.fallback = before if before != PROVIDER else None
                self._tracking_uri = tracking_uri
                self._seam.set_process_tracking_uri(tracking_uri)
            elif tracking_uri != self._tracking_uri:
                raise RuntimeError(
                    "two MLflow trackers with different tracking URIs are running steps in one "
                    "process at the same time; use one tracker per pipeline, or run the steps "
                    "in separate processes."
                )
            os.environ.update({**self._registry, **variables})
            self._credentials.enter(connection)
            self._depth += 1

    def leave(self, connection: "Connection") -> None:
        """Undo one `enter`; the last one restores the variables and tracking URI saved first."""
        with self._lock:
            if self._depth == 0:
                return
            self._credentials.leave(connection)
            self._depth -= 1
            if self._depth:
                return
            self._seam.set_process_tracking_uri(self._saved_tracking_uri)
            for name, value in self._saved_variables.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            self._tracking_uri = None
