"""The tracker's process state, in one object: every cache, lock, thread and installed patch.

ZenML may run several steps of one tracker at once on a thread pool, and a long-lived process
(a notebook, a server running pipelines) runs many pipelines: every cache here is bounded, every
lock map forgets locks nobody holds. Importing changes nothing: `install` puts the runtime's
hooks and patches into the process (the tracker does, when ZenML builds it), `reset` takes them
out and starts afresh.
"""

import atexit
import threading

from tracker_flavor.auth_provider import ConnectionAuthProvider
from tracker_flavor.concurrency.caches import Once
from tracker_flavor.config.settings_alias import SettingsAlias
from tracker_flavor.delivery.offline import HeldSpools
from tracker_flavor.delivery.queue import Ledgers
from tracker_flavor.mlflow.connection import PROVIDER
from tracker_flavor.mlflow.process import MlflowProcess
from tracker_flavor.runs.state import RunState
from tracker_flavor.watcher.after_step import Deliveries
from tracker_flavor.watcher.launches import LaunchHook
from tracker_flavor.watcher.watcher import Watcher


class Runtime:
    """What the tracker keeps per process, layer by layer, and what it installs in it."""

    def __init__(self) -> None:
        self.once = Once()
        """Warnings given once per process."""
        self.mlflow = MlflowProcess(self.once)
        self.runs = RunState(self.mlflow)
        self.ledgers = Ledgers(self.mlflow.seam, self.mlflow.autologging.lock)
        self.watcher = Watcher(self.mlflow.autologging.lock)
        self.deliveries = Deliveries()
        self.launches = LaunchHook(self.watcher, self.deliveries)
        self.held = HeldSpools()
        """What steps could not write to the spool (a full or read-only artifact store)."""
        self._settings_alias = SettingsAlias(self.once)
        self._installed = False
        self._guard = threading.Lock()

    def install(self) -> None:
        """Install the runtime's hooks and patches in the process (once; later calls do nothing)."""
        with self._guard:
            if self._installed:
                return
            self._installed = True
            self.mlflow.install()
            ConnectionAuthProvider.held = lambda: self.mlflow.credentials
            # Where the package's entry point is not installed; MLflow keeps it (harmless
            # without held connections), as it keeps the entry points' providers.
            self.mlflow.seam.register_auth_provider(ConnectionAuthProvider, PROVIDER)
            self._settings_alias.install()
            self.launches.install()
            atexit.register(self.at_exit)

    def at_exit(self) -> None:
        """Let the watcher's delivery in flight finish, then settle what it still watches."""
        self.deliveries.wait()
        self.watcher.check()
        self.mlflow.threads.report_dropped()  # threads still running: their count so far

    def reset(self) -> None:
        """Take out what `install` put in and start afresh (tests); pending watches are dropped."""
        with self._guard:
            self.watcher.stop()
            if self._installed:
                atexit.unregister(self.at_exit)
                self._settings_alias.uninstall()
                self.launches.uninstall()
            self.mlflow.uninstall()
        self.__init__()  # type: ignore[misc]


runtime = Runtime()
"""The process's one runtime."""
