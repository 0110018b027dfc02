"""Settle MLflow runs once ZenML has the final word on a pipeline run or a step.

A step closes its parent run itself when it can tell it is the last one (static pipelines). A
dynamic pipeline's steps are not known in advance, and a static pipeline whose last steps were
cached or skipped has no step left to do it; for those, the process that ran their steps watches
the ZenML run in a daemon thread, and once more at exit (the runtime's exit hook). A step can
also fail after the tracker ended its runs (ZenML saves the outputs afterwards), so the final
status of each step that ended well is watched the same way. Steps that finished are settled a
few at a time (each mostly waits on MLflow and ZenML), then their runs: one at a time, a wide
map's outputs lagged a minute behind it.

ZenML's launcher is the first to know: a step launched in this process is settled at once, in
the thread that launched it (`finish`), so its outputs are in MLflow before the launch returns.
Such a step is never polled, and neither is its pipeline run while one of its steps is being
launched here (a run with a step still running cannot be over), nor while the thread that
launched its last step launches the next: a local run costs ZenML no poll until its last step
returned. The rest (steps published by another process, runs that
ended) is polled: all watched runs in one call, all watched steps in another.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from zenml.logger import get_logger

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow import threads
from tracker_flavor.watcher.polling import poll_interval, statuses

if TYPE_CHECKING:
    from zenml.enums import ExecutionStatus
    from zenml.models import StepRunResponse

logger = get_logger(__name__)

Settle = Callable[["ExecutionStatus"], None]
"""Called once with the final status of the ZenML run."""
SettleStep = Callable[["StepRunResponse"], None]
"""Called once with the step run as ZenML published it (final status, outputs)."""
Kind = Literal["run", "step"]
THREAD_NAME = "mlflow-plus-watcher"
SETTLE_THREADS = 4
"""Steps settled at once: sending a wide map's outputs one step at a time lagged far behind."""
ReadStatuses = Callable[[list[UUID], list[UUID]], dict[UUID, Any]]
"""Return the status of each of the given run ids, and each of the step run ids as ZenML lists
it, that still exists."""


def zenml_statuses(run_ids: list[UUID], step_ids: list[UUID]) -> dict[UUID, Any]:
    """Read the statuses from the active ZenML store."""
    from zenml.client import Client

    return statuses(Client().zen_store, run_ids, step_ids)


def status_of(found: Any) -> "ExecutionStatus":
    """Return the status of a run's status or a step run."""
    from zenml.enums import ExecutionStatus

    return found if isinstance(found, ExecutionStatus) else found.status


@dataclass
class Watched:
    """A watched run or step, and what settles it."""

    kind: Kind
    settle: Callable[[Any], None]
    """Called with the run's status, or the step run."""
    awaited: bool = False
    """A launch in this process returns the step: no poll asks for it."""


@dataclass
class Launch:
    """A step launch under way in one thread: the runs it keeps open, the steps it returns."""

    inherited: frozenset[UUID]
    """The runs of the thread's previous launch: its next step is most likely theirs, and ZenML
    names the run only once the step starts, after creating it."""
    ran: set[UUID] = field(default_factory=set)
    steps: set[UUID] = field(default_factory=set)

    @property
    def runs(self) -> set[UUID]:
        """Return the runs this launch keeps from being polled."""
        return set(self.inherited) | self.ran


Due = tuple[UUID, Watched, Any]


def _settle(item: Due, lock: ReadersWriterLock) -> None:
    """Call one settle callback; a failure is logged, never raised."""
    run_id, watched, found = item
    try:
        with lock.shared():  # settling builds MLflow clients that import lazily
            watched.settle(found)
    except Exception as error:  # a watcher must never take the process down
        logger.warning(
            "Could not settle the MLflow run of ZenML %s %s: %s",
            watched.kind,
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
        self._pending: dict[UUID, Watched] = {}
        self._settling: set[UUID] = set()
        self._busy: Counter[UUID] = Counter()
        """Pipeline runs with a step being launched in this process."""
        self._launch = threading.local()
        self._lock = threading.Condition()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._newest = time.monotonic()

    def watch(self, run_id: UUID, settle: Settle) -> None:
        """Call `settle` once the ZenML pipeline run `run_id` has finished."""
        self._add(run_id, Watched("run", settle))

    def watch_step(self, step_run_id: UUID, settle: SettleStep) -> None:
        """Call `settle` with the step run once ZenML has published it final."""
        launch: Launch | None = getattr(self._launch, "current", None)
        with self._lock:
            if launch is not None:
                launch.steps.add(step_run_id)
        self._add(step_run_id, Watched("step", settle, awaited=launch is not None))

    def _add(self, key: UUID, watched: Watched) -> None:
        with self._lock:
            self._pending[key] = watched
            starting = self._thread is None or not self._thread.is_alive()
            if watched.kind == "step" or starting:
                self._newest = time.monotonic()
            if starting:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                threads.detached(self._thread)  # not one of a step's threads

    @contextmanager
    def launching(self) -> Iterator[None]:
        """Mark a step launch in this thread; afterwards its unreturned steps are polled."""
        outer: Launch | None = getattr(self._launch, "current", None)
        launch = Launch(getattr(self._launch, "last", frozenset()))
        with self._lock:
            self._busy.update(launch.inherited)
        self._launch.current = launch
        try:
            yield
        finally:
            self._launch.current = outer
            # A cached step runs no hook: its launch names no run, the thread keeps its last.
            self._launch.last = frozenset(launch.ran) or launch.inherited
            with self._lock:
                self._busy.subtract(launch.runs)
                self._busy += Counter()  # drops the runs no launch keeps open any more
                released = False
                for step_id in launch.steps:
                    if (watched := self._pending.get(step_id)) is not None:
                        watched.awaited, released = False, True
            if released:  # the launch failed after the tracker's hooks: ZenML's word decides
                self._wake.set()

    def launched_here(self) -> bool:
        """Tell whether this thread is in a step launch (settling the step it returns)."""
        return getattr(self._launch, "current", None) is not None

    def running(self, run_id: UUID) -> None:
        """Tell that this thread's launch runs a step of the pipeline run `run_id`."""
        launch: Launch | None = getattr(self._launch, "current", None)
        if launch is None:
            return
        with self._lock:
            if run_id not in launch.runs:
                self._busy[run_id] += 1
            launch.ran.add(run_id)

    def check(self) -> None:
        """Settle every watched run and step that ZenML reports finished."""
        with self._lock:
            pending = [
                (key, watched)
                for key, watched in self._pending.items()
                if not watched.awaited and not (watched.kind == "run" and self._busy[key])
            ]
        if not pending:
            return
        try:
            found = self._read(
                [key for key, watched in pending if watched.kind == "run"],
                [key for key, watched in pending if watched.kind == "step"],
            )
        except Exception as error:  # a watcher must never take the process down
            logger.warning(
                "Could not read the status of the watched ZenML runs (asking again later): %s",
                redact_credentials(str(error)),
            )
            return
        due: list[Due] = []
        for key, watched in pending:
            final = found.get(key)
            if final is not None and not status_of(final).is_finished:
                continue
            with self._lock:
                if self._pending.get(key) is watched:
                    del self._pending[key]
                    if final is not None:
                        due.append((key, watched, final))
                        self._settling.add(key)
        # Steps first, side by side (each mostly waits on MLflow and ZenML), then the runs.
        steps = [item for item in due if item[1].kind == "step"]
        runs = [item for item in due if item[1].kind == "run"]
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

    def finish(self, step_run: "StepRunResponse") -> None:
        """Settle a watched step now, as ZenML just published it final in this thread.

        If the watcher thread is settling it already, wait until it is done: either way the
        step's outputs are in MLflow when this returns.
        """
        if not step_run.status.is_finished:
            return
        with self._lock:
            watched = self._pending.pop(step_run.id, None)
            if watched is None:
                self._lock.wait_for(lambda: step_run.id not in self._settling)
                return
            self._settling.add(step_run.id)
        self._settle((step_run.id, watched, step_run))

    def _settle(self, item: Due) -> None:
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
            self._wake.clear()
            self.check()
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
