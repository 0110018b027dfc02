"""Batched, accounted delivery of what user code logs inside a step (the `async_logging` setting).

With async logging on, `mlflow.log_metric`/`log_param`/`set_tag` hand their values to the
tracking store's async queue and return at once. MLflow's own queue merges small batches, and
when a merged request fails it reports the merged-in batches as logged, so nobody can tell how
many values were lost. While steps run, this module puts its own queue on the store instead: it
sends values in batches of up to MLflow's limits, as soon as a batch is full or every
`WINDOW_SECONDS`, keeps an exact account per step, and delivers everything a step logged before
the step is reported finished. A step whose values did not all arrive fails, saying how many.
"""

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tracker_flavor.uris import redact_credentials

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.abstract_store import AbstractStore
    from mlflow.utils.async_logging.run_operations import RunOperations

WINDOW_SECONDS = 1.0
"""Longest time a logged value waits before it is sent."""
MAX_VALUES = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
"""MLflow's limits for one `log-batch` request."""

DELIVERED_KEY = "mlflow_values_delivered"
UNDELIVERED_KEY = "mlflow_values_not_delivered"

LogBatch = Callable[..., None]


class DeliveryError(RuntimeError):
    """Values a step logged did not reach the MLflow store."""


@dataclass
class Ledger:
    """One step's account of the values its code logged into one MLflow run."""

    run_id: str
    uri: str
    submitted: int = 0
    delivered: int = 0
    error: str | None = None

    @property
    def undelivered(self) -> int:
        """Return how many submitted values have not reached the store."""
        return self.submitted - self.delivered

    def failure(self) -> DeliveryError | None:
        """Return the error that fails the step, if any value was not delivered."""
        if not self.undelivered:
            return None
        return DeliveryError(
            redact_credentials(  # both the URI and MLflow's message may carry user:password@
                f"{self.undelivered} of {self.submitted} points (metric values, params, tags) "
                f"logged in this step were not delivered to MLflow run {self.run_id} at "
                f"{self.uri}: {self.error or 'the store did not acknowledge them'}"
            )
        )


@dataclass(eq=False)
class _Chunk:
    """Values of one logging call (or a slice of a large one) that travel together."""

    run_id: str
    ledger: Ledger | None
    metrics: list["Metric"] = field(default_factory=list)
    params: list["Param"] = field(default_factory=list)
    tags: list["RunTag"] = field(default_factory=list)
    done: Future[None] = field(default_factory=Future)

    @property
    def size(self) -> int:
        """Return the number of values in the chunk."""
        return len(self.metrics) + len(self.params) + len(self.tags)


def _chunks(
    run_id: str,
    ledger: Ledger | None,
    metrics: list["Metric"],
    params: list["Param"],
    tags: list["RunTag"],
) -> list[_Chunk]:
    """Split one logging call into chunks that each fit in a single request."""
    chunks = []
    for start in range(0, max(len(metrics), len(params), len(tags), 1), MAX_PARAMS):
        chunks.append(
            _Chunk(
                run_id,
                ledger,
                metrics[start : start + MAX_PARAMS],
                params[start : start + MAX_PARAMS],
                tags[start : start + MAX_PARAMS],
            )
        )
    return [chunk for chunk in chunks if chunk.size]


class BatchingQueue:
    """Stands in for MLflow's AsyncLoggingQueue on one tracking store while steps run."""

    def __init__(self, log_batch: LogBatch) -> None:
        self._log_batch = log_batch
        self._pending: dict[str, deque[_Chunk]] = {}
        self._pending_values: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self._ledgers: dict[str, Ledger] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="mlflow-plus-batching", daemon=True)
        self._thread.start()

    # The interface MLflow's stores call.

    def is_active(self) -> bool:
        """Tell MLflow the queue accepts values (it always does)."""
        return True

    def is_idle(self) -> bool:
        """Tell MLflow the queue is never idle, so its flush reaches `flush`."""
        return False

    def activate(self) -> None:
        """Do nothing: the queue is active from the start."""

    def log_batch_async(
        self,
        run_id: str,
        params: list["Param"],
        tags: list["RunTag"],
        metrics: list["Metric"],
    ) -> "RunOperations":
        """Queue values for `run_id`; return MLflow's handle on their delivery."""
        from mlflow.utils.async_logging.run_operations import RunOperations

        ledger = _current.get()
        if ledger is None or ledger.run_id != run_id:
            ledger = self._ledgers.get(run_id)
        chunks = _chunks(run_id, ledger, list(metrics), list(params), list(tags))
        with self._cond:
            for chunk in chunks:
                if chunk.ledger is not None:
                    chunk.ledger.submitted += chunk.size
                self._pending.setdefault(run_id, deque()).append(chunk)
                self._pending_values[run_id] = self._pending_values.get(run_id, 0) + chunk.size
            if self._pending_values.get(run_id, 0) >= MAX_VALUES:
                self._cond.notify_all()
        return RunOperations([chunk.done for chunk in chunks])  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        """Deliver everything queued for every run (`mlflow.flush_async_logging`)."""
        with self._cond:
            run_ids = list(self._pending)
        for run_id in run_ids:
            self.deliver(run_id)

    def end_async_logging(self) -> None:
        """Deliver everything queued (MLflow ends async logging this way)."""
        self.flush()

    def shut_down_async_logging(self) -> None:
        """Deliver everything queued (MLflow shuts async logging down this way)."""
        self.flush()

    # The tracker's side.

    def open(self, ledger: Ledger) -> None:
        """Attribute values logged into `ledger.run_id` from other threads to `ledger`."""
        with self._cond:
            self._ledgers[ledger.run_id] = ledger

    def close(self, ledger: Ledger) -> None:
        """Deliver what is queued for the ledger's run and stop attributing values to it."""
        self.deliver(ledger.run_id)
        with self._cond:
            if self._ledgers.get(ledger.run_id) is ledger:
                del self._ledgers[ledger.run_id]

    def deliver(self, run_id: str) -> None:
        """Send everything queued for `run_id` now and wait for requests already under way."""
        while self._send_one(run_id):
            pass
        with self._cond:
            self._cond.wait_for(lambda: not self._in_flight.get(run_id))

    def stop(self) -> None:
        """Deliver everything queued and end the sending thread."""
        self.flush()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        """Send full batches at once and everything else every WINDOW_SECONDS."""
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopped or self._has_full_batch(), timeout=WINDOW_SECONDS
                )
                if self._stopped:
                    return
                run_ids = list(self._pending)
            for run_id in run_ids:
                self._send_one(run_id)

    def _has_full_batch(self) -> bool:
        """Tell whether some run has a full batch waiting (call with the lock held)."""
        return any(count >= MAX_VALUES for count in self._pending_values.values())

    def _take(self, run_id: str) -> list[_Chunk]:
        """Take the next request's worth of chunks of `run_id` (call with the lock held)."""
        chunks = self._pending.get(run_id, deque())
        taken: list[_Chunk] = []
        values = params = tags = 0
        while chunks:
            chunk = chunks[0]
            if taken and (
                values + chunk.size > MAX_VALUES
                or params + len(chunk.params) > MAX_PARAMS
                or tags + len(chunk.tags) > MAX_TAGS
            ):
                break
            taken.append(chunks.popleft())
            values, params, tags = (
                values + chunk.size,
                params + len(chunk.params),
                tags + len(chunk.tags),
            )
        if chunks:
            self._pending_values[run_id] -= values
        else:
            self._pending.pop(run_id, None)
            self._pending_values.pop(run_id, None)
        return taken

    def _send_one(self, run_id: str) -> bool:
        """Send one request's worth of `run_id`'s values; return whether there was any."""
        with self._cond:
            taken = self._take(run_id)
            if not taken:
                return False
            self._in_flight[run_id] = self._in_flight.get(run_id, 0) + 1
        # A step whose values already failed to arrive fails anyway: don't wait on the store.
        sending: list[_Chunk] = []
        doomed: list[_Chunk] = []
        for chunk in taken:
            (doomed if chunk.ledger and chunk.ledger.error else sending).append(chunk)
        error: Exception | None = None
        if sending:
            try:
                self._log_batch(
                    run_id=run_id,
                    metrics=[m for chunk in sending for m in chunk.metrics],
                    params=[p for chunk in sending for p in chunk.params],
                    tags=[t for chunk in sending for t in chunk.tags],
                )
            except Exception as failure:  # reported through the ledgers and futures
                error = failure
        with self._cond:
            for chunk in sending:
                if chunk.ledger is not None:
                    if error is None:
                        chunk.ledger.delivered += chunk.size
                    elif chunk.ledger.error is None:
                        chunk.ledger.error = str(error) or type(error).__name__
            self._in_flight[run_id] -= 1
            self._cond.notify_all()
        for chunk in sending:
            if error is None:
                chunk.done.set_result(None)
            else:
                chunk.done.set_exception(error)
        for chunk in doomed:
            chunk.done.set_exception(DeliveryError("not sent: an earlier batch of the step failed"))
        return True


@dataclass
class _Installation:
    """A BatchingQueue standing in for a store's own queue, and how many steps use it."""

    store: "AbstractStore"
    original: Any
    queue: BatchingQueue
    users: int = 0


_current: ContextVar[Ledger | None] = ContextVar("mlflow_plus_ledger", default=None)
_installations: dict[str, _Installation] = {}
_open: dict[UUID, tuple[Ledger, _Installation]] = {}
_guard = threading.Lock()


def open_ledger(
    step_run_id: UUID, uri: str, run_id: str, params: Mapping[str, str] | None = None
) -> None:
    """Start accounting for what the step logs into `run_id`, queueing `params` first."""
    from mlflow.entities import Param
    from mlflow.tracking._tracking_service.utils import _get_store

    with _guard:
        installation = _installations.get(uri)
        if installation is None:
            store = _get_store(uri)  # type: ignore[no-untyped-call]
            original = store._async_logging_queue
            if not original.is_idle():
                original.shut_down_async_logging()
            installation = _Installation(store, original, BatchingQueue(store.log_batch))
            store._async_logging_queue = installation.queue
            _installations[uri] = installation
        installation.users += 1
        ledger = Ledger(run_id=run_id, uri=uri)
        _open[step_run_id] = (ledger, installation)
    installation.queue.open(ledger)
    _current.set(ledger)
    if params:
        installation.queue.log_batch_async(
            run_id, [Param(key, value) for key, value in params.items()], [], []
        )


def delivery_metadata(step_run_id: UUID) -> dict[str, int]:
    """Deliver the step's queued values and return its account as step metadata."""
    entry = _open.get(step_run_id)
    if entry is None:
        return {}
    ledger, installation = entry
    installation.queue.deliver(ledger.run_id)
    return {DELIVERED_KEY: ledger.delivered, UNDELIVERED_KEY: ledger.undelivered}


def close_ledger(step_run_id: UUID) -> DeliveryError | None:
    """Deliver the step's queued values, end its account, and return the error if any was lost."""
    with _guard:
        entry = _open.pop(step_run_id, None)
    if entry is None:
        return None
    ledger, installation = entry
    installation.queue.close(ledger)
    if _current.get() is ledger:
        _current.set(None)
    with _guard:
        installation.users -= 1
        if installation.users == 0:
            installation.queue.stop()
            installation.store._async_logging_queue = installation.original
            del _installations[ledger.uri]
    return ledger.failure()


@contextmanager
def delivered(step_run_id: UUID) -> Iterator[bool]:
    """Deliver the step's values, yield whether some were lost, and then fail the step if so.

    A failure inside the block (ending the runs on an unreachable server) does not hide the
    count of lost values: the delivery error is raised from it.
    """
    error = close_ledger(step_run_id)
    try:
        yield error is not None
    except Exception as cause:
        if error is None:
            raise
        raise error from cause
    if error is not None:
        raise error


def environment(enabled: bool) -> dict[str, str]:
    """Return the variable that sends the step's fluent logging calls through the queue."""
    return {"MLFLOW_ENABLE_ASYNC_LOGGING": "true"} if enabled else {}
