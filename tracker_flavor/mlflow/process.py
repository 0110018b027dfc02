"""The MLflow state of the process, in one object: everything the steps share in MLflow."""

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.autologging import Autologging
from tracker_flavor.mlflow.credentials import ServerCredentials
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
        self.environment = ProcessEnvironment(self.seam, self.noise, self.credentials)
        self.autologging = Autologging()
        self.stores = LocalStores(self.seam)
        self.system_metrics = SystemMetrics()
        self.threads = StepThreads(self.seam)
        self.deferred = DeferredFailures()
        self.one_line_errors = OneLineErrors()

    def install(self) -> None:
        """Install the one-line output's filters and hooks, and the late values' store lookup."""
        self.noise.install()
        self.one_line_errors.install()
        self.threads.install()

    def uninstall(self) -> None:
        """Remove what `install` and the seam put into the process."""
        self.noise.uninstall()
        self.one_line_errors.uninstall()
        self.threads.uninstall()
        self.seam.uninstall()
