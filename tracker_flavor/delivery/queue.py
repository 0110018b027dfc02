"""Batched, accounted delivery of what user code logs inside a step (the `async_logging` setting).

With async logging on, `mlflow.log_metric`/`log_param`/`set_tag` hand their values to the
tracking store's async queue and return at once. MLflow's own queue merges small batches, and
when a merged request fails it reports the merged-in batches as logged, so nobody can tell how
many values were lost. While steps run, this module puts its own queue on the store instead:

- Every value is checked with MLflow's own validators when it is logged; an invalid one is
  refused alone, with one warning per key, and counted as rejected.
- Values leave in batches of up to MLflow's limits, as soon as a batch is full or every
  `WINDOW_SECONDS`. A batch the store refuses as invalid (a changed param, say) is split until
  the refused values are isolated; the others are delivered.
- A batch that fails otherwise goes back to the head of the queue and is sent again after a
  backoff (doubling up to `MAX_BACKOFF_SECONDS`) for as long as the step runs. A param is
  stored once per value and a tag keeps its latest value, so sending them again is safe; a
  metric point is not (MLflow's file store keeps every point it is sent). So before a batch
  that may have arrived (its answer was lost) goes again, its metric points are checked
  against the run's history and only those the store lacks are sent.
- Each step keeps an exact account (its ledger, see ledger.py) of what it logged, into any run.
  At the end of the step its values are due at once, with only what must reach the store
  before them (see `_needed`), and the queue keeps trying for the step's final wait (the time
  one request may take: MLflow's request timeout times its tries); what is still not delivered
  stays on the step's ledger (`Ledger.left`), and the step fails, saying how many values and
  how many of those were sent without an answer (they may have arrived).
"""

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from zenml.logger import get_logger

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.delivery.ledger import (
    FINAL_WAIT_SECONDS,
    Call,
    Chunk,
    DeliveryError,
    Ledger,
    chunks_of,
    validated,
)
from tracker_flavor.delivery.points import identity
from tracker_flavor.mlflow import internals, threads
from tracker_flavor.mlflow.batch_limits import MAX_PARAMS, MAX_REQUEST_BYTES, MAX_TAGS, MAX_VALUES

if TYPE_CHECKING:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.store.tracking.abstract_store import AbstractStore
    from mlflow.utils.async_logging.run_operations import RunOperations

    from tracker_flavor.mlflow.internals import Internals

logger = get_logger(__name__)

WINDOW_SECONDS = 1.0
"""Longest time a logged value waits before it is sent."""
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
"""Wait after a failed request before the next one; doubles with each failure in a row."""

LogBatch = Callable[..., None]
History = Callable[[str, str], Iterable["Metric"]]
"""A run's stored points of one metric key: (run id, key) → points."""


def _refused(error: Exception) -> bool:
    """Tell whether the store refused a request for its values (sending it again cannot help)."""
    return getattr(error, "error_code", None) == "INVALID_PARAMETER_VALUE"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """Yield an error and every error it was caused by or wraps."""
    seen: set[int] = set()
    todo: list[Any] = [error]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += list(current.args)


def _may_have_arrived(error: BaseException) -> bool:
    """Tell whether a failed request may have reached the store: all but failed connections."""
    from urllib3.exceptions import ConnectTimeoutError

    # ConnectTimeoutError includes urllib3's NewConnectionError: nothing was sent.
    return not any(
        isinstance(cause, (ConnectTimeoutError, ConnectionRefusedError)) for cause in _causes(error)
    )


class BatchingQueue:
    """Stands in for MLflow's AsyncLoggingQueue on one tracking store while steps run.

    One thread sends every request, so at most one is under way, holding the autolog `lock`
    shared; `history` reads what the store holds of a metric; `window` and `backoff` (first
    and longest wait after a failure) are parameters for tests.
    """

    def __init__(
        self,
        log_batch: LogBatch,
        history: History,
        seam: "Internals",
        lock: ReadersWriterLock,
        *,
        window: float = WINDOW_SECONDS,
        backoff: tuple[float, float] = (FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS),
        current: ContextVar[Ledger | None] | None = None,
    ) -> None:
        self._log_batch = log_batch
        self._history = history
        self._seam = seam
        self._lock = lock
        self.current = current or ContextVar("mlflow_plus_ledger", default=None)
        """The ledger of the step whose code runs in this context (its thread, those it started)."""
        self._window = window
        self._first_backoff, self._max_backoff = backoff
        self._backoff = self._first_backoff
        self._retry_at = 0.0
        self._pending: dict[str, deque[Chunk]] = {}
        self._pending_values: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self._due: dict[str, list[Chunk]] = {}
        """Per run, what ending steps need sent now (see `_needed`), until the queue changes."""
        self._sending: list[Chunk] = []
        self._urgent = 0
        self._ledgers: list[Ledger] = []
        self._final_wait = FINAL_WAIT_SECONDS
        self._warned: set[tuple[str, str]] = set()
        self._groups = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="mlflow-plus-batching", daemon=True)
        threads.detached(self._thread)  # not one of a step's threads

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
        """Queue the valid values for `run_id`; return MLflow's handle on their delivery."""
        from mlflow.utils.async_logging.run_operations import RunOperations

        good_metrics, good_params, good_tags, bad = validated(self._seam, metrics, params, tags)
        call = Call()
        with self._cond:
            ledger = self._ledger_for(run_id)
            chunks = chunks_of(run_id, ledger, call, good_metrics, good_params, good_tags)
            for kind, key, error in bad:
                self._reject(ledger, kind, key, error)
                call.error = call.error or error
            if ledger is not None:
                ledger.submitted += len(bad)
            for chunk in chunks:
                self._queue(chunk)
            if not chunks:
                call.pieces = 1
                call.settle()
            if self._pending_values.get(run_id, 0) >= MAX_VALUES:
                self._cond.notify_all()
        return RunOperations([call.done])  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        """Wait until everything queued is delivered, or the final wait passed (it stays queued)."""
        deadline = time.monotonic() + self._final_wait
        self._wait_until(lambda: not self._pending and not self._sending, deadline)

    def end_async_logging(self) -> None:
        """Send everything queued now (MLflow ends async logging this way when a run ends)."""
        with self._cond:
            for run_id in self._since:
                self._since[run_id] = float("-inf")
            self._cond.notify_all()

    def shut_down_async_logging(self) -> None:
        """Send everything queued now (MLflow shuts async logging down this way)."""
        self.end_async_logging()

    # The tracker's side.

    def open(self, ledger: Ledger) -> None:
        """Account what is logged from now on (in this context, or into its run) to `ledger`."""
        with self._cond:
            self._ledgers.append(ledger)
            self._final_wait = ledger.final_wait

    def close(self, ledger: Ledger) -> None:
        """Deliver the ledger's values (see `settle`) and stop accounting values to it."""
        self.settle(ledger)
        with self._cond:
            if ledger in self._ledgers:
                self._ledgers.remove(ledger)

    def settle(self, ledger: Ledger) -> None:
        """Deliver the ledger's values within its final wait; keep what is left on the ledger.

        Only the ledger's values are due, and what must reach the store before them (see
        `_needed`): other steps' values wait for their own window or end.
        """
        deadline = time.monotonic() + ledger.final_wait
        with self._cond:
            ledger.settling = True
            self._due.clear()
            self._cond.notify_all()
            while ledger.queued and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(remaining)
            # A request under way settles first: failed, its chunks are back at the head.
            self._cond.wait_for(lambda: all(chunk.ledger is not ledger for chunk in self._sending))
            ledger.settling = False
            self._due.clear()
            ledger.closed = True
            for chunks in self._pending.values():
                for chunk in [chunk for chunk in chunks if chunk.ledger is ledger]:
                    chunks.remove(chunk)
                    self._forget(chunk)
                    self._leave(chunk)
            for run_id in [run_id for run_id, chunks in self._pending.items() if not chunks]:
                self._drop_run(run_id)

    def take_left(self, ledger: Ledger) -> list[Chunk]:
        """Take the values a settled ledger has left, counting them as spooled."""
        with self._cond:
            left, ledger.left = ledger.left, []
            ledger.spooled += sum(chunk.size for chunk in left)
            ledger.spooled_unconfirmed += sum(chunk.size for chunk in left if chunk.sent)
        return left

    def stop(self) -> None:
        """Deliver what is queued within the final wait and end the sending thread."""
        self.flush()
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            lost = [chunk for chunks in self._pending.values() for chunk in chunks]
            for chunk in lost:
                self._leave(chunk)
            self._pending.clear()
        if lost:
            logger.warning(
                "%d values logged to MLflow outside of any step were not delivered.",
                sum(chunk.size for chunk in lost),
            )

    # Internals; methods named "call with the lock held" expect self._cond held.

    def _ledger_for(self, run_id: str) -> Ledger | None:
        """Return the open ledger that values logged now into `run_id` belong to (lock held).

        The step's context knows it whatever the run (the user's own runs too), also in the
        threads the step started (mlflow/threads.py); a value from a step that ended is late:
        it goes to its run, charged to no step. From other threads, the step whose run it is,
        or the only step running, does. When several steps share the run (unified mode) nobody
        can tell: no step is charged.
        """
        current = self.current.get()
        if current is not None and current.closed:
            self._late(current)
            return None
        if current is not None and current in self._ledgers:
            return current
        open_ledgers = [ledger for ledger in self._ledgers if not ledger.closed]
        owners = [ledger for ledger in open_ledgers if ledger.run_id == run_id]
        if owners:
            return owners[0] if len(owners) == 1 else None
        return open_ledgers[0] if len(open_ledgers) == 1 else None

    def _late(self, ledger: Ledger) -> None:
        """Account a value logged after its step ended, warning once per step (lock held)."""
        ledger.late += 1
        if ledger.late == 1:
            logger.warning(
                "A thread started by step %r logged to MLflow after the step ended: its values "
                "go to the step's run %s but are not in the step's metadata.",
                ledger.step_name,
                ledger.run_id,
            )

    def _queue(self, chunk: Chunk) -> None:
        """Append a new chunk to its run's queue and account it (lock held)."""
        if chunk.ledger is not None:
            chunk.ledger.submitted += chunk.size
            chunk.ledger.queued += 1
            if chunk.ledger.settling:  # due, with what it must follow: others' are not
                self._due.pop(chunk.run_id, None)
        self._pending.setdefault(chunk.run_id, deque()).append(chunk)
        self._pending_values[chunk.run_id] = self._pending_values.get(chunk.run_id, 0) + chunk.size
        self._since.setdefault(chunk.run_id, time.monotonic())

    def _requeue(self, run_id: str, chunks: list[Chunk]) -> None:
        """Put chunks back at the head of their run's queue, due at once (lock held)."""
        pending = self._pending.setdefault(run_id, deque())
        pending.extendleft(reversed(chunks))
        self._due.pop(run_id, None)
        self._pending_values[run_id] = self._pending_values.get(run_id, 0) + sum(
            chunk.size for chunk in chunks
        )
        self._since[run_id] = float("-inf")

    def _forget(self, chunk: Chunk) -> None:
        """Take a removed chunk's values off its run's pending count (lock held)."""
        self._pending_values[chunk.run_id] -= chunk.size

    def _drop_run(self, run_id: str) -> None:
        """Forget a run with nothing pending (lock held)."""
        self._pending.pop(run_id, None)
        self._pending_values.pop(run_id, None)
        self._since.pop(run_id, None)
        self._due.pop(run_id, None)

    def _leave(self, chunk: Chunk) -> None:
        """Give up on a chunk at the end of its step: it stays on the ledger (lock held)."""
        error = DeliveryError("not delivered before the step ended")
        if chunk.ledger is not None:
            chunk.ledger.left.append(chunk)
            chunk.ledger.queued -= 1
        chunk.call.settle(error)

    def _reject(self, ledger: Ledger | None, kind: str, key: str, error: Exception) -> None:
        """Account one value the store refuses, warning once per key (lock held)."""
        if ledger is not None:
            ledger.rejected += 1
        if (kind, key) not in self._warned:
            self._warned.add((kind, key))
            logger.warning(
                "MLflow refuses the %s %r logged in this step, which is not logged (the step's "
                "other values are): %s",
                kind,
                key,
                getattr(error, "message", None) or error,
            )

    def _wait_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Have everything sent without waiting for the window; wait for `done` or `deadline`."""
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                while not done() and (remaining := deadline - time.monotonic()) > 0:
                    self._cond.wait(remaining)
            finally:
                self._urgent -= 1

    def _next(self) -> tuple[str, list[Chunk]] | float:
        """Return the next run and batch to send, or how long to wait for one (lock held)."""
        now = time.monotonic()
        if now < self._retry_at:
            return self._retry_at - now
        if any(ledger.settling and ledger.queued for ledger in self._ledgers):
            for run_id, chunks in self._pending.items():
                if (ending := self._due.get(run_id)) is None:
                    ending = self._due[run_id] = _needed(chunks)
                if ending:
                    return run_id, self._take(run_id, ending)
        wait = float(self._window)
        for run_id, since in self._since.items():
            due = since + self._window
            if self._urgent or self._pending_values[run_id] >= MAX_VALUES or now >= due:
                batch = self._take(run_id)
                if run_id in self._since:  # others' turn next
                    self._since[run_id] = self._since.pop(run_id)
                return run_id, batch
            wait = min(wait, due - now)
        return wait

    def _loop(self) -> None:
        """Send full batches at once, the rest within the window, failed ones after a backoff."""
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    next_ = self._next()
                    if isinstance(next_, tuple):
                        break
                    self._cond.wait(next_)
                run_id, batch = next_
                self._sending = batch
            self._send(run_id, batch)

    def _take(self, run_id: str, due: list[Chunk] | None = None) -> list[Chunk]:
        """Take the next request's worth of chunks of `run_id`, or of its `due` ones (lock held)."""
        chunks = self._pending[run_id]
        taken: list[Chunk] = []
        values = tags = size = 0
        keys: set[str] = set()
        for chunk in chunks if due is None else due:
            if taken and (
                chunk.group != taken[0].group
                or values + chunk.size > MAX_VALUES
                or len(keys) + len(chunk.params) > MAX_PARAMS
                or tags + len(chunk.tags) > MAX_TAGS
                or size + chunk.bytes > MAX_REQUEST_BYTES
                or not keys.isdisjoint(param.key for param in chunk.params)
            ):
                break
            taken.append(chunk)
            values, tags, size = values + chunk.size, tags + len(chunk.tags), size + chunk.bytes
            keys.update(param.key for param in chunk.params)
        if due is not None:
            del due[: len(taken)]
        if due is None or all(c is first for c, first in zip(taken, chunks, strict=False)):
            for _ in taken:  # the head of the queue, as it mostly is
                chunks.popleft()
        else:
            gone = {id(chunk) for chunk in taken}
            chunks = self._pending[run_id] = deque(c for c in chunks if id(c) not in gone)
        if due is None:
            self._due.pop(run_id, None)
        if chunks:
            self._pending_values[run_id] -= values
        else:
            self._drop_run(run_id)
        return taken

    def _send(self, run_id: str, batch: list[Chunk]) -> None:
        """Send one batch and settle, split or requeue its chunks by the outcome."""
        error: Exception | None = None
        try:
            with self._lock.shared():  # MLflow's request path imports lazily
                metrics = self._unsent(run_id, batch)
                params = [p for chunk in batch for p in chunk.params]
                tags = [t for chunk in batch for t in chunk.tags]
                if metrics or params or tags:
                    self._log_batch(run_id=run_id, metrics=metrics, params=params, tags=tags)
        except Exception as failure:  # settled through the ledgers and futures
            error = failure
        with self._cond:
            self._sending = []
            if error is None:
                self._backoff = self._first_backoff
                for chunk in batch:
                    if chunk.ledger is not None:
                        chunk.ledger.delivered += chunk.size
                        chunk.ledger.queued -= 1
                    chunk.call.settle()
            elif _refused(error):
                self._isolate(run_id, batch, error)
            else:
                self._retry(run_id, batch, error)
            self._cond.notify_all()

    def _unsent(self, run_id: str, batch: list[Chunk]) -> list["Metric"]:
        """Return the batch's points, less those of chunks sent before that the store holds."""
        keys = {m.key for chunk in batch if chunk.sent for m in chunk.metrics}
        stored = {identity(p) for key in keys for p in self._history(run_id, key)}
        return [
            m
            for chunk in batch
            for m in chunk.metrics
            if not (chunk.sent and identity(m) in stored)
        ]

    def _isolate(self, run_id: str, batch: list[Chunk], error: Exception) -> None:
        """Split a refused batch to find the refused values; reject a lone one (lock held)."""
        if len(batch) == 1 and batch[0].size == 1:
            chunk = batch[0]
            kind, key = next(
                (kind, value.key)
                for kind, values in (
                    ("metric", chunk.metrics),
                    ("param", chunk.params),
                    ("tag", chunk.tags),
                )
                for value in values
            )
            self._reject(chunk.ledger, kind, key, error)
            if chunk.ledger is not None:
                chunk.ledger.queued -= 1
            chunk.call.settle(error)
            return
        if len(batch) == 1:
            first, second = batch[0].halves()
            if first.ledger is not None:
                first.ledger.queued += 1
            halves = [[first], [second]]
        else:
            sizes = list(itertools.accumulate(chunk.size for chunk in batch))
            middle = min(
                len(batch) - 1,
                next(i for i, count in enumerate(sizes, start=1) if 2 * count >= sizes[-1]),
            )
            halves = [batch[:middle], batch[middle:]]
        for half in halves:
            group = next(self._groups)
            for chunk in half:
                chunk.group = group
        self._requeue(run_id, halves[0] + halves[1])

    def _retry(self, run_id: str, batch: list[Chunk], error: Exception) -> None:
        """Put a failed batch back at the head of the queue and back off (lock held).

        A batch that may have arrived is checked against the run's history before it goes
        again (`_unsent`); while a server stays frozen that read fails too, so nothing is sent
        twice into it.
        """
        arrived = _may_have_arrived(error)
        for chunk in batch:
            chunk.sent = chunk.sent or arrived
            if chunk.ledger is not None:
                chunk.ledger.error = str(error) or type(error).__name__
        self._requeue(run_id, batch)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_backoff)


def _needed(chunks: deque[Chunk]) -> list[Chunk]:
    """Return the chunks of ending steps in a run's queue, and those that must go before them.

    Those are earlier chunks with a param or tag of the same key (their order decides what the
    run keeps), and so on backwards; the rest of the queue keeps its window.
    """
    needed: list[Chunk] = []
    keys: set[tuple[str, str]] = set()
    for chunk in reversed(chunks):
        ordered = chunk.ordered_keys if chunk.params or chunk.tags else set()
        if (chunk.ledger is not None and chunk.ledger.settling) or not keys.isdisjoint(ordered):
            needed.append(chunk)
            keys |= ordered
    return needed[::-1]


@dataclass
class _Installation:
    """A BatchingQueue standing in for a store's own queue, and how many steps use it."""

    store: "AbstractStore"
    original: Any
    queue: BatchingQueue
    users: int = 0


def final_wait() -> float:
    """Return how long one request may take with the step's MLflow settings: timeout x tries."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    timeout = MLFLOW_HTTP_REQUEST_TIMEOUT.get()  # type: ignore[no-untyped-call]
    return float(timeout * (MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() + 1))  # type: ignore[no-untyped-call]


def _log_params_now(uri: str, run_id: str, params: Mapping[str, str]) -> None:
    """Log `params` in one request, without the queue (MLflow has no async queue to replace)."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    if params:
        MlflowClient(uri).log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


class Ledgers:
    """The steps' open ledgers, and the queue installed on each store while steps use it."""

    def __init__(self, seam: "Internals", lock: ReadersWriterLock) -> None:
        self._seam = seam
        self._lock = lock
        self._installations: dict[str, _Installation] = {}
        self._open: dict[UUID, tuple[Ledger, _Installation]] = {}
        self._guard = threading.Lock()
        self.current: ContextVar[Ledger | None] = ContextVar("mlflow_plus_ledger", default=None)
        """The ledger of the step whose code runs in this context, shared by every store's queue:
        a thread that outlives its step still holds its closed ledger under the next queue."""

    def open(
        self,
        step_run_id: UUID,
        uri: str,
        run_id: str,
        params: Mapping[str, str] | None = None,
        wait_seconds: float | None = None,
        step_name: str = "",
    ) -> None:
        """Start accounting for what the step logs, queueing `params` for `run_id` first.

        The step's end waits `wait_seconds` for its values, by default the time one request may
        take.
        """
        from mlflow.entities import Param

        replaced = None
        with self._guard:
            installation = self._installations.get(uri)
            if installation is None:
                store = self._seam.tracking_store(uri)
                original = None if store is None else self._seam.async_queue(store)
                if store is not None and original is not None:
                    queue = BatchingQueue(
                        store.log_batch,
                        store.get_metric_history,
                        self._seam,
                        self._lock,
                        current=self.current,
                    )
                    installation = _Installation(store, original, queue)
                    internals.set_async_queue(store, queue)
                    self._installations[uri] = installation
                    replaced = original
            if installation is not None:
                installation.users += 1
                wait = final_wait() if wait_seconds is None else wait_seconds
                ledger = Ledger(run_id=run_id, uri=uri, step_name=step_name, final_wait=wait)
                self._open[step_run_id] = (ledger, installation)
        # Requests go out with no lock held: other steps open and close their ledgers meanwhile.
        if installation is None:  # no batching: MLflow logs on its own
            _log_params_now(uri, run_id, params or {})
            return
        if replaced is not None and not replaced.is_idle():
            replaced.shut_down_async_logging()  # what MLflow's own queue still holds
        installation.queue.open(ledger)
        self.current.set(ledger)
        if params:
            installation.queue.log_batch_async(
                run_id, [Param(key, value) for key, value in params.items()], [], []
            )

    def metadata(self, step_run_id: UUID) -> dict[str, int]:
        """Deliver the step's queued values and return its account as step metadata."""
        entry = self._open.get(step_run_id)
        if entry is None:
            return {}
        ledger, installation = entry
        installation.queue.settle(ledger)
        return ledger.metadata()

    def spill(self, step_run_id: UUID) -> list[Chunk]:
        """Settle the step's values and take what is left off its ledger, for the spool."""
        entry = self._open.get(step_run_id)
        if entry is None:
            return []
        ledger, installation = entry
        installation.queue.settle(ledger)
        return installation.queue.take_left(ledger)

    def close(self, step_run_id: UUID) -> DeliveryError | None:
        """Deliver the step's queued values, end its account; return the error if any was lost."""
        with self._guard:
            entry = self._open.pop(step_run_id, None)
        if entry is None:
            return None
        ledger, installation = entry
        installation.queue.close(ledger)
        if self.current.get() is ledger:
            self.current.set(None)
        with self._guard:
            installation.users -= 1
            last = installation.users == 0
            if last:
                internals.set_async_queue(installation.store, installation.original)
                del self._installations[ledger.uri]
        if last:  # no step logs through it any more: deliver what it holds, with no lock held
            installation.queue.stop()
        return ledger.failure()

    @contextmanager
    def delivered(self, step_run_id: UUID) -> Iterator[bool]:
        """Deliver the step's values, yield whether some were lost, and then fail the step if so.

        A failure inside the block (ending the runs on an unreachable server) does not hide the
        count of lost values: the delivery error is raised from it.
        """
        error = self.close(step_run_id)
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
