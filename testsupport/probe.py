"""Measure tracker hooks per step: time inside them, MLflow requests and ZenML store calls."""

import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any

HOOKS = ("prepare_step_run", "get_step_run_metadata", "cleanup_step_run")
RUN_HOOK = "get_pipeline_run_metadata"
STORE_VERBS = ("get_", "list_", "create_", "update_", "delete_", "batch_")
WATCHER_THREAD = "mlflow-plus-watcher"


def wait_for_watcher(seconds: float = 60.0) -> None:
    """Wait until the tracker's watcher thread has settled all it watched and ended.

    Call it after a pipeline run: the run's last settlements (the parent's status, the
    outputs sent once ZenML published each step) then count for that run, and none of them runs beside the next one.
    """
    for thread in threading.enumerate():
        if thread.name == WATCHER_THREAD:
            thread.join(seconds)
            if thread.is_alive():
                raise TimeoutError(f"the tracker's watcher still runs after {seconds} s")


@dataclass
class StepSample:
    """One step's tracker hooks: seconds spent in them, proxy requests and store calls in them."""

    position: int
    hook_seconds: float = 0.0
    metadata_seconds: float = 0.0
    requests_before: int = 0
    requests: int = 0
    store_calls: int = 0
    store_records: int = 0
    """Entities the store calls returned (a list call counts its page's items)."""


@dataclass
class Probe:
    """Times the hooks of tracker classes, counts proxy requests and ZenML store calls.

    Store calls are counted per thread, so they are exact per step even when mapped steps run
    at once; proxy requests per step are only exact when steps run one after the other.
    """

    count: Callable[[], int]
    steps: dict[Any, StepSample] = field(default_factory=dict)
    run_start_requests: int = 0
    run_start_store_calls: int = 0
    run_start_seconds: float = 0.0
    watcher_store_calls: int = 0
    store_calls: int = 0
    """All store calls of the run, ZenML's own included."""
    _local: threading.local = field(default_factory=threading.local)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def instrumented(self, *tracker_classes: type, store: type | None = None) -> Iterator["Probe"]:
        """Wrap the hooks of `tracker_classes` (and the methods of `store`) while the block runs."""
        saved = [(cls, name, cls.__dict__.get(name)) for cls in tracker_classes for name in
                 (*HOOKS, RUN_HOOK)]  # fmt: skip
        for cls in tracker_classes:
            for name in HOOKS:
                setattr(cls, name, self._timed(name, getattr(cls, name)))
            setattr(cls, RUN_HOOK, self._counted(getattr(cls, RUN_HOOK)))
        if store is not None:
            for name in dir(store):
                method = inspect.getattr_static(store, name)
                # Plain methods only: a static or class method would get `self` once wrapped.
                if name.startswith(STORE_VERBS) and isinstance(method, FunctionType):
                    saved.append((store, name, store.__dict__.get(name)))
                    setattr(store, name, self._store_call(method))
        try:
            yield self
        finally:
            for cls, name, original in saved:
                if original is None:
                    delattr(cls, name)
                else:
                    setattr(cls, name, original)

    @contextmanager
    def run(self) -> Iterator[list[StepSample]]:
        """Collect the samples of one pipeline run, in step order."""
        self.steps.clear()
        self.run_start_requests = self.run_start_store_calls = 0
        self.run_start_seconds = 0.0
        self.watcher_store_calls = self.store_calls = 0
        collected: list[StepSample] = []
        yield collected
        collected.extend(sorted(self.steps.values(), key=lambda sample: sample.position))

    def _store_call(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._local, "depth", 0)
            self._local.depth = depth + 1
            try:
                result = method(*args, **kwargs)
            finally:
                self._local.depth = depth
            if not depth:  # a store method calling another counts once
                self._count_store_call(result)
            return result

        return counted

    def _count_store_call(self, result: Any) -> None:
        items = getattr(result, "items", None)
        records = len(items) if isinstance(items, list) else 1
        with self._guard:
            self.store_calls += 1
            sample: StepSample | None = getattr(self._local, "sample", None)
            if sample is not None:
                sample.store_calls += 1
                sample.store_records += records
            elif getattr(self._local, "run_start", False):
                self.run_start_store_calls += 1
            elif threading.current_thread().name.startswith(WATCHER_THREAD):  # and its pool
                self.watcher_store_calls += 1

    def _counted(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        def counted(tracker: Any, run_id: Any) -> Any:
            before = self.count()
            self._local.run_start = True
            start = time.perf_counter()
            try:
                return hook(tracker, run_id)
            finally:
                self.run_start_seconds += time.perf_counter() - start
                self._local.run_start = False
                self.run_start_requests += self.count() - before

        return counted

    def _timed(self, name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        def timed(tracker: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            with self._guard:
                sample = self.steps.setdefault(info.step_run_id, StepSample(len(self.steps)))
            if name == "prepare_step_run":
                sample.requests_before = self.count()
            self._local.sample = sample
            start = time.perf_counter()
            try:
                return hook(tracker, info, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self._local.sample = None
                sample.hook_seconds += elapsed
                if name == "get_step_run_metadata":
                    sample.metadata_seconds += elapsed
                if name == "cleanup_step_run":
                    sample.requests = self.count() - sample.requests_before

        return timed
