"""The MLflow state of the process, in one object: everything the steps share in MLflow."""

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.autologging import Autologging
from tracker_flavor.mlflow.connection import WorkspaceTokens
from tracker_flavor.mlflow.credentials import (
    DATABRICKS,
    ServerCredentials,
    WorkspaceConfigProvider,
)
from tracker_flavor.mlflow.environment import ProcessEnvironment
from tracker_flavor.mlflow.errors import DeferredFailures, OneLineErrors
from tracker_flavor.mlflow.internals import Internals
from tracker_flavor.mlflow.quiet import RequestNoise
from tracker_flavor.mlflow.sqlite_store import LocalStores
from tracker_flavor.mlflow.system_metrics import SystemMetrics
from tracker_flavor.mlflow.threads import StepThreads


class MlflowProcess:
    """The process's MLflow environment, autologging, local stores, samplers, threads, patches."""

    def __init__(self, once: Once) -> None:
        self.seam = Internals(once)
        self.noise = RequestNoise()
        self.credentials = ServerCredentials()
        self.tokens = WorkspaceTokens()
        self.environment = ProcessEnvironment(self.seam, self.noise, self.credentials)
        self.autologging = Autologging()
        self.stores = LocalStores(self.seam)
        self.system_metrics = SystemMetrics()
        self.threads = StepThreads(self.seam)
        self.deferred = DeferredFailures()
        self.one_line_errors = OneLineErrors()

    def install(self) -> None:
        """Install the process hooks: one-line output, late values' store lookup, Databricks."""
        self.noise.install()
        self.one_line_errors.install()
        self.threads.install()
        self.seam.install_workspace_config(
            lambda previous: WorkspaceConfigProvider(self.credentials, self.seam, previous)
        )
        self.seam.fall_back_from_sdk_artifacts(self._holds_workspace)

    def _holds_workspace(self) -> bool:
        """Tell whether running steps hold a Databricks workspace's credentials."""
        return self.credentials.find(DATABRICKS) is not None

    def uninstall(self) -> None:
        """Remove what `install` and the seam put into the process."""
        self.noise.uninstall()
        self.one_line_errors.uninstall()
        self.threads.uninstall()
        self.seam.uninstall()
