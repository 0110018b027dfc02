"""Settle parent runs when ZenML reports the pipeline run over, for runs no step can close.

A step closes its parent run itself when it can tell it is the last one (static pipelines). A
dynamic pipeline's steps are not known in advance, and a static pipeline whose last steps were
cached or skipped has no step left to do it; for those, the process that ran their steps watches
the ZenML run in a daemon thread, and once more at exit.
"""

import atexit
import threading
from collections.abc import Callable
from uuid import UUID

from zenml.logger import get_logger

logger = get_logger(__name__)

POLL_SECONDS = 0.5

Settle = Callable[[bool], None]
"""Called once with whether the ZenML run succeeded."""


class RunFinalizer:
    """Watch ZenML pipeline runs and call their settle callbacks when they finish."""

    def __init__(self) -> None:
        self._pending: dict[UUID, Settle] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        atexit.register(self.check)

    def watch(self, run_id: UUID, settle: Settle) -> None:
        """Call `settle` once the ZenML run `run_id` has finished."""
        with self._lock:
            self._pending[run_id] = settle
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="mlflow-plus-finalizer", daemon=True
                )
                self._thread.start()

    def check(self) -> None:
        """Settle every watched run that ZenML reports finished."""
        from zenml.client import Client

        with self._lock:
            pending = list(self._pending.items())
        for run_id, settle in pending:
            try:
                status = Client().zen_store.get_run(run_id, hydrate=False).status
                if not status.is_finished:
                    continue
                with self._lock:
                    if self._pending.pop(run_id, None) is None:
                        continue
                settle(status.is_successful)
            except Exception as error:  # a watcher must never take the process down
                logger.warning("Could not settle the MLflow run of ZenML run %s: %s", run_id, error)
                with self._lock:
                    self._pending.pop(run_id, None)

    def _loop(self) -> None:
        while True:
            self._wake.wait(POLL_SECONDS)
            self.check()
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return


run_finalizer = RunFinalizer()
