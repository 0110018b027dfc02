"""The public methods of ZenML's built-in MLflow tracker, with its meaning, for mlflow_plus.

ZenML's MLflow model registry, model deployer and helpers (`mlflow_utils.get_tracking_uri`) call
these on any `MLFlowExperimentTracker`. They configure the process for MLflow's fluent API, as
the built-in does; the step hooks never call them (they keep the environment per step).
"""

import os
from typing import Any, cast

from mlflow.environment_variables import MLFLOW_REGISTRY_URI, MLFLOW_TRACKING_INSECURE_TLS
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
    MLFlowExperimentTracker,
)
from zenml.integrations.mlflow.mlflow_utils import is_zenml_run

from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.config.uris import is_remote_uri, uri_scheme
from tracker_flavor.mlflow.connection import Connection, connect
from tracker_flavor.mlflow.embedded import ARTIFACTS_DIRECTORY
from tracker_flavor.mlflow.errors import explained
from tracker_flavor.runtime import runtime


def local_store_path(uri: str, configured: bool, artifact_store_path: str) -> str | None:
    """Return the local directory of a store's artifacts, as the built-in's `local_path` does."""
    if is_remote_uri(uri):
        return None
    if uri_scheme(uri) == "file":
        return uri.removeprefix("file:")
    if configured:
        return None
    return os.path.abspath(os.path.join(artifact_store_path, ARTIFACTS_DIRECTORY))


def process_variables(client_variables: dict[str, str]) -> dict[str, str]:
    """Return the process environment the built-in's `configure_mlflow` leaves for a store.

    MLFLOW_TRACKING_URI is not among them: `mlflow.set_tracking_uri` exports it itself.
    """
    return {MLFLOW_TRACKING_INSECURE_TLS.name: "false", **client_variables}


class BuiltinTrackerApi(MLFlowExperimentTracker):
    """ZenML's `MLFlowExperimentTracker`, its public methods answered by mlflow_plus's rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        runtime.install()  # before ZenML resolves any settings key of a pipeline
        super().__init__(*args, **kwargs)

    @property
    def config(self) -> MLflowPlusConfig:  # type: ignore[override]
        """Return the component's configuration."""
        return cast(MLflowPlusConfig, self._config)

    def connection(self, pinned: str | Connection | None = None) -> Connection:
        """Return the connection to the tracker's store, with its secrets resolved now."""
        return connect(self.config, runtime.mlflow.stores, pinned, runtime.mlflow.tokens)

    def tracking_uri(self) -> str:
        """Return the tracking URI: config, else MLFLOW_TRACKING_URI, else the embedded store."""
        return self.connection().uri

    def _ensure_valid_tracking_uri(self) -> None:
        """Skip the built-in's check: MLflowPlusConfig validated the URI, naming the fix."""

    def get_tracking_uri(self, as_plain_text: bool = True) -> str:
        """Return the store's tracking URI (`as_plain_text=False`: a secret stays a reference)."""
        if not as_plain_text and (raw := self.config.model_dump()["tracking_uri"]):
            return str(raw)
        return self.tracking_uri()

    @property
    def local_path(self) -> str | None:
        """Return the local directory of the store's artifacts; None for a server or database."""
        from zenml.client import Client

        path = local_store_path(
            self.tracking_uri(),
            configured=bool(self.config.tracking_uri),
            artifact_store_path=Client().active_stack.artifact_store.path,
        )
        if path is not None:
            os.makedirs(path, exist_ok=True)
        return path

    def configure_mlflow(self) -> None:
        """Point MLflow's fluent API of this process at the store, with its credentials.

        A tracking server's credentials are held in memory for the rest of the process (the
        environment only names the provider that hands them to MLflow's requests).
        """
        import mlflow

        connection = self.connection()
        runtime.mlflow.credentials.configure(connection)
        variables = connection.environment()
        os.environ.update(process_variables(variables))
        mlflow.set_tracking_uri(connection.uri)
        if connection.kind == "databricks":
            mlflow.set_registry_uri(variables[MLFLOW_REGISTRY_URI.name])

    def get_run_id(self, experiment_name: str, run_name: str) -> str | None:
        """Return the id of the latest ZenML-made run named `run_name` in the experiment."""
        from mlflow import MlflowClient
        from mlflow.entities import LifecycleStage, ViewType

        self.configure_mlflow()
        connection = self.connection()
        with explained(connection, runtime.mlflow.noise):
            client = MlflowClient(tracking_uri=connection.uri)
            name = connection.experiment_name(experiment_name)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                return None
            found = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"attributes.run_name = {run_name!r}",
                run_view_type=ViewType.ALL,
                order_by=["attributes.start_time DESC"],
            )
        ours = [run for run in found if is_zenml_run(run)]
        ours.sort(key=lambda run: run.info.lifecycle_stage != LifecycleStage.ACTIVE)
        return ours[0].info.run_id if ours else None

    def disable_autologging(self) -> None:
        """Turn MLflow autologging off for every framework, as the built-in does after a step."""
        import mlflow

        with runtime.mlflow.autologging.lock.exclusive():
            mlflow.autolog(disable=True, silent=True)
