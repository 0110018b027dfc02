"""What a step's threads log lands in the step's run; the runs its code starts go under it.

MLflow keeps the active run per thread, and the tracker's account of what a step logs per
context (delivery/queue.py): a thread the step's code starts (`threading.Thread`, a
`concurrent.futures` pool, a library's callback thread) has neither, so its first `mlflow.log_*`
would start a run of its own in the `Default` experiment. While steps run, each thread started
and each pool task submitted from a step's context runs in a copy of that context, with the
step's run on its active-run stack: its values go to the step's run and count on the step's
ledger, whichever of the steps side by side (mapped steps share one process) started it. A
thread keeps its step's run after the step ended, so a late value never starts a run either.

`mlflow.start_run` in a step's context (its thread or one it started) makes a run nested under
the active run, the step's by default, in the step's experiment, even without `nested=True`;
runs left open when a thread's task ends are ended with the step (see runs/steps.py).

A metric logged without a step into a run that steps share (unified mode's parent) goes at the
step's own MLflow step (`metric_step`). A trace started in a step's context names the run active
on its own thread, not MLflow's latest run of any thread (a mapped sibling's). The first step to
enter installs the hooks on `Thread.start`, `ThreadPoolExecutor.submit`, `mlflow.start_run`,
`mlflow.log_metric(s)` and tracing's run lookup; the last one to leave takes them out.
"""

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker_flavor.concurrency.locks import Shared

if TYPE_CHECKING:
    from mlflow.entities import Run

    from tracker_flavor.mlflow.internals import Internals


@dataclass
class StepContext:
    """The run a step's code logs into, and the runs its threads left open."""

    run: "Run"
    metric_step: int | None = None
    """MLflow's step of a metric logged into `run` without one (see `metric_step`)."""
    left_open: list[str] = field(default_factory=list)


def nested_in_step(
    context: StepContext | None, active_run_id: str | None, arguments: dict[str, Any]
) -> dict[str, Any]:
    """Return `mlflow.start_run`'s arguments for a run started in `context`.

    Outside a step, or resuming a run by id, they stay as given. Else the run is nested under
    the active run (the step's when none is), in the step's experiment unless one is given.
    """
    if context is None or arguments.get("run_id"):
        return arguments
    from mlflow.environment_variables import MLFLOW_RUN_ID

    if MLFLOW_RUN_ID.get():  # type: ignore[no-untyped-call]
        return arguments
    changed = {**arguments, "nested": True}
    if changed.get("experiment_id") is None:
        changed["experiment_id"] = context.run.info.experiment_id
    if active_run_id is None and changed.get("parent_run_id") is None:
        changed["parent_run_id"] = context.run.info.run_id
    return changed


def metric_step(
    context: StepContext | None, target_run_id: str | None, step: int | None
) -> int | None:
    """Return the MLflow step of a metric logged with `step` into `target_run_id`.

    A step sharing the parent with other steps (unified mode) puts a metric logged without a
    step at its own position, so one key logged by two steps is two points, not one hidden
    behind the other. An explicit step, and values for any other run, stay as they are.
    """
    if step is not None or context is None or context.metric_step is None:
        return step
    return context.metric_step if target_run_id == context.run.info.run_id else step


def detached(thread: threading.Thread) -> None:
    """Start one of the tracker's own threads outside any step's context."""
    contextvars.Context().run(thread.start)


class StepThreads:
    """The step context of each thread, and the hooks that hand it on while steps run."""

    def __init__(self, seam: "Internals") -> None:
        self._seam = seam
        self.current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
            "mlflow_plus_step", default=None
        )
        """The step whose code (or a thread it started) runs in this context."""
        self._originals: dict[str, Any] = {}
        self._hooks = Shared(self._install, self._uninstall)

    def enter(self) -> None:
        """Install the hooks for one more running step (the first step installs them)."""
        self._hooks.enter()

    def leave(self) -> None:
        """Undo one `enter`; the last one takes the hooks out."""
        self._hooks.leave()

    def uninstall(self) -> None:
        """Take the hooks out whoever still runs (a reset)."""
        self._hooks.reset()

    def begin(self, run: "Run", metric_step: int | None = None) -> None:
        """Make `run` the step's run for this context and the threads started from it."""
        self.current.set(StepContext(run, metric_step))

    def end(self) -> list[str]:
        """End this context's step; return the runs its threads left open, oldest first."""
        context = self.current.get()
        self.current.set(None)
        return [] if context is None else list(context.left_open)

    def _in_step(
        self, context: StepContext, work: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run `work` with the step's run active on this thread; keep what it leaves open."""
        self.current.set(context)
        run_id = context.run.info.run_id
        if run_id in self._seam.active_run_ids():  # a pool's worker the step started
            return work(*args, **kwargs)
        self._seam.push_active_run(context.run)
        try:
            return work(*args, **kwargs)
        finally:
            context.left_open += self._seam.pop_active_runs(run_id)

    def _install(self) -> None:
        """Put the hooks in place."""
        import mlflow
        from mlflow.tracking import fluent

        start = threading.Thread.start
        submit = ThreadPoolExecutor.submit
        start_run = fluent.start_run
        self._originals = {"start": start, "submit": submit, "start_run": start_run}
        self._originals.update(log_metric=fluent.log_metric, log_metrics=fluent.log_metrics)

        def start_in_step(thread: threading.Thread) -> None:
            context = self.current.get()
            if context is not None:
                copied = contextvars.copy_context()
                run = thread.run
                thread.run = lambda: copied.run(self._in_step, context, run)  # type: ignore[method-assign]
            start(thread)

        def submit_in_step(
            executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
        ) -> Future[Any]:
            context = self.current.get()
            if context is None:
                return submit(executor, fn, *args, **kwargs)
            copied = contextvars.copy_context()
            return submit(executor, copied.run, self._in_step, context, fn, *args, **kwargs)

        signature = inspect.signature(start_run)

        @functools.wraps(start_run)
        def start_run_in_step(*args: Any, **kwargs: Any) -> Any:
            arguments = signature.bind_partial(*args, **kwargs).arguments
            active = mlflow.active_run()
            changed = nested_in_step(
                self.current.get(), None if active is None else active.info.run_id, arguments
            )
            return start_run(**changed)

        def at_metric_step(log: Callable[..., Any]) -> Callable[..., Any]:
            signature = inspect.signature(log)

            @functools.wraps(log)
            def log_in_step(*args: Any, **kwargs: Any) -> Any:
                arguments = signature.bind_partial(*args, **kwargs).arguments
                context = self.current.get()
                if context is not None and context.metric_step is not None:
                    active = mlflow.active_run()
                    target = arguments.get("run_id") or (active.info.run_id if active else None)
                    arguments["step"] = metric_step(context, target, arguments.get("step"))
                return log(**arguments)

            return log_in_step

        fluent.log_metric = mlflow.log_metric = at_metric_step(fluent.log_metric)
        fluent.log_metrics = mlflow.log_metrics = at_metric_step(fluent.log_metrics)
        latest = self._seam.latest_active_run_rule()
        if latest is not None:
            self._originals["latest"] = latest

            def latest_in_step() -> "Run | None":
                # Mapped steps run side by side: a trace belongs to its own thread's step run.
                active = mlflow.active_run() if self.current.get() is not None else None
                return active if active is not None else latest()

            self._seam.set_latest_active_run_rule(latest_in_step)
        threading.Thread.start = start_in_step  # type: ignore[method-assign,assignment]
        ThreadPoolExecutor.submit = submit_in_step  # type: ignore[method-assign,assignment]
        fluent.start_run = start_run_in_step
        mlflow.start_run = start_run_in_step

    def _uninstall(self) -> None:
        """Put back what `_install` replaced."""
        import mlflow
        from mlflow.tracking import fluent

        threading.Thread.start = self._originals["start"]  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = self._originals["submit"]  # type: ignore[method-assign]
        for name in ("start_run", "log_metric", "log_metrics"):
            setattr(fluent, name, self._originals[name])
            setattr(mlflow, name, self._originals[name])
        if "latest" in self._originals:
            self._seam.set_latest_active_run_rule(self._originals["latest"])
        self._originals = {}
