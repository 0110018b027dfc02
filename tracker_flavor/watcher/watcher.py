"""Settle MLflow runs once ZenML has the final word on a pipeline run or a step.

A step closes its parent run itself when it can tell it is the last one (static pipelines). A
dynamic pipeline's steps are not known in advance, and a static pipeline whose last steps were
cached or skipped has no step left to do it; for those, the process that ran their steps watches
the ZenML run in a daemon thread, and once more at exit (the runtime's exit hook). A step can
also fail after the tracker
ended its runs (ZenML saves the outputs afterwards), so the final status of each step that
ended well is watched the same way. Steps that finished are settled a few at a time (each
mostly waits on MLflow and ZenML), then their runs: one at a time, a wide map's outputs lagged a
minute behind it. A step ZenML published in this process is settled at once, in the thread that
launched it (`finish`), so its outputs are in MLflow before the launch returns.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from zenml.logger import get_logger

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow import threads
from tracker_flavor.watcher.polling import poll_interval, statuses

if TYPE_CHECKING:
    from zenml.enums import ExecutionStatus

logger = get_logger(__name__)

Settle = Callable[["ExecutionStatus"], None]
"""Called once with the final status of the ZenML run or step."""
Kind = Literal["run", "step"]
THREAD_NAME = "mlflow-plus-watcher"
SETTLE_THREADS = 4
"""Steps settled at once: sending a wide map's outputs one step at a time lagged far behind."""
ReadStatuses = Callable[[list[UUID], list[UUID]], dict[UUID, "ExecutionStatus"]]
"""Return the status of each of the given run ids and step run ids that still exists."""


def zenml_statuses(run_ids: list[UUID], step_ids: list[UUID]) -> dict[UUID, "ExecutionStatus"]:
    """Read the statuses from the active ZenML store."""
    from zenml.client import Client

    return statuses(Client().zen_store, run_ids, step_ids)


def _settle(item: tuple[UUID, Kind, Settle, "ExecutionStatus"], lock: ReadersWriterLock) -> None:
    """Call one settle callback; a failure is logged, never raised."""
    run_id, kind, settle, status = item
    try:
        with lock.shared():  # settling builds MLflow clients that import lazily
            settle(status)
    except Exception as error:  # a watcher must never take the process down
        logger.warning(
            "Could not settle the MLflow run of ZenML %s %s: %s",
            kind,
            run_id,
            redact_credentials(str(error)),
        )


class Watcher:
    """Watch ZenML pipeline runs and steps, and call their settle callbacks when they finish.

    The callbacks run holding the autolog `lock` shared.
    """

    def __init__(self, lock: ReadersWriterLock, read: ReadStatuses = zenml_statuses) -> None:
        self._autolog_lock = lock
        self._read = read
        self._pending: dict[UUID, tuple[Kind, Settle]] = {}
        self._settling: set[UUID] = set()
        self._lock = threading.Condition()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._newest = time.monotonic()

    def watch(self, run_id: UUID, settle: Settle, kind: Kind = "run") -> None:
        """Call `settle` once the ZenML run (or step run) `run_id` has finished."""
        with self._lock:
            self._pending[run_id] = (kind, settle)
            starting = self._thread is None or not self._thread.is_alive()
            if kind == "step" or starting:
                self._newest = time.monotonic()
            if starting:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                threads.detached(self._thread)  # not one of a step's threads

    def check(self) -> None:
        """Settle every watched run and step that ZenML reports finished."""
        with self._lock:
            pending = list(self._pending.items())
        if not pending:
            return
        try:
            found = self._read(
                [run_id for run_id, (kind, _) in pending if kind == "run"],
                [run_id for run_id, (kind, _) in pending if kind == "step"],
            )
        except Exception as error:  # a watcher must never take the process down
            logger.warning(
                "Could not read the status of the watched ZenML runs (asking again later): %s",
                redact_credentials(str(error)),
            )
            return
        due: list[tuple[UUID, Kind, Settle, ExecutionStatus]] = []
        for run_id, (kind, settle) in pending:
            status = found.get(run_id)
            if status is not None and not status.is_finished:
                continue
            with self._lock:
                if self._pending.pop(run_id, None) is not None and status is not None:
                    due.append((run_id, kind, settle, status))
                    self._settling.add(run_id)
        # Steps first, side by side (each mostly waits on MLflow and ZenML), then the runs.
        steps = [item for item in due if item[1] == "step"]
        runs = [item for item in due if item[1] == "run"]
        if len(steps) > 1:
            with ThreadPoolExecutor(SETTLE_THREADS, thread_name_prefix=THREAD_NAME) as pool:
                for item in steps:
                    try:
                        pool.submit(self._settle, item)
                    except RuntimeError:  # the exit check: no new thread may start any more
                        self._settle(item)
            steps = []
        for item in [*steps, *runs]:
            self._settle(item)

    def finish(self, step_id: UUID, status: "ExecutionStatus") -> None:
        """Settle a watched step now, with the final status ZenML just published in this thread.

        If the watcher thread is settling it already, wait until it is done: either way the
        step's outputs are in MLflow when this returns.
        """
        if not status.is_finished:
            return
        with self._lock:
            entry = self._pending.pop(step_id, None)
            if entry is None:
                self._lock.wait_for(lambda: step_id not in self._settling)
                return
            self._settling.add(step_id)
        kind, settle = entry
        self._settle((step_id, kind, settle, status))

    def _settle(self, item: tuple[UUID, Kind, Settle, "ExecutionStatus"]) -> None:
        try:
            _settle(item, self._autolog_lock)
        finally:
            with self._lock:
                self._settling.discard(item[0])
                self._lock.notify_all()

    def stop(self) -> None:
        """Drop what is watched (a runtime reset); the thread ends at its next poll."""
        with self._lock:
            self._pending.clear()

    def next_wait(self, now: float) -> float:
        """Return the wait before the next poll: quick again after each new step is watched."""
        return poll_interval(now - self._newest)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.next_wait(time.monotonic()))
            self.check()
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
