"""Measure tracker hooks per step: time inside them and requests counted at the proxy."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

HOOKS = ("prepare_step_run", "get_step_run_metadata", "cleanup_step_run")


@dataclass
class StepSample:
    """One step's tracker hooks: seconds spent in them and proxy requests while the step ran."""

    position: int
    hook_seconds: float = 0.0
    metadata_seconds: float = 0.0
    requests_before: int = 0
    requests: int = 0


@dataclass
class Probe:
    """Times the hooks of tracker classes and counts proxy requests per step.

    Steps must run one after the other in this process (the local orchestrator), so that the
    requests between a step's first and last hook are that step's.
    """

    count: Callable[[], int]
    steps: dict[Any, StepSample] = field(default_factory=dict)
    run_start_requests: int = 0

    @contextmanager
    def instrumented(self, *tracker_classes: type) -> Iterator["Probe"]:
        """Wrap the hooks of `tracker_classes` while the block runs."""
        saved = [(cls, name, cls.__dict__.get(name)) for cls in tracker_classes for name in
                 (*HOOKS, "get_pipeline_run_metadata")]  # fmt: skip
        for cls in tracker_classes:
            for name in HOOKS:
                setattr(cls, name, self._timed(name, getattr(cls, name)))
            cls.get_pipeline_run_metadata = self._counted(cls.get_pipeline_run_metadata)
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
        self.run_start_requests = 0
        collected: list[StepSample] = []
        yield collected
        collected.extend(sorted(self.steps.values(), key=lambda sample: sample.position))

    def _counted(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        def counted(tracker: Any, run_id: Any) -> Any:
            before = self.count()
            try:
                return hook(tracker, run_id)
            finally:
                self.run_start_requests += self.count() - before

        return counted

    def _timed(self, name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        def timed(tracker: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            sample = self.steps.setdefault(info.step_run_id, StepSample(len(self.steps)))
            if name == "prepare_step_run":
                sample.requests_before = self.count()
            start = time.perf_counter()
            try:
                return hook(tracker, info, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                sample.hook_seconds += elapsed
                if name == "get_step_run_metadata":
                    sample.metadata_seconds += elapsed
                if name == "cleanup_step_run":
                    sample.requests = self.count() - sample.requests_before

        return timed
