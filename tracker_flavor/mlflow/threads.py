"""What a step's threads log lands in the step's run; the runs its code starts go under it.

MLflow keeps the active run per thread, and the tracker's account of what a step logs per
context (delivery/queue.py): a thread the step's code starts (`threading.Thread`, a
`concurrent.futures` pool, a library's callback thread) has neither, so its first `mlflow.log_*`
would start a run of its own in the `Default` experiment. While steps run, each thread started
and each pool task submitted from a step's context runs in a copy of that context, with the
step's run on its active-run stack: its values go to the step's run and count on the step's
ledger, whichever of the steps side by side (mapped steps share one process) started it. A
thread keeps its step's run after the step ended, so a late value never starts a run either: it
goes to the step's run while the process's tracking store is the one the step logged to (the
next step's, on the same server); else (the process's last step ended, the next step logs
elsewhere) the step's run is not in that store, and the value is dropped: one warning names the
step, and a line counts the values once its threads and tasks are done (`LateStore`, through a
hook on MLflow's store lookup that the runtime puts in for its lifetime: `install`).

`mlflow.start_run` in a step's context (its thread or one it started) makes a run nested under
the active run, the step's by default, in the step's experiment, even without `nested=True`;
runs left open when a thread's task ends are ended with the step (see runs/steps.py).

A metric logged without a step into a run that steps share (unified mode's parent) goes at the
step's own MLflow step (`metric_step`): `mlflow.log_metric(s)` get a marker as their default
step, so a name imported before the step started carries it too, and `MlflowClient`'s writes
put the step's position in its place. A trace started in a step's context names the run active
on its own thread, not MLflow's latest run of any thread (a mapped sibling's). The first step to
enter installs the hooks on `Thread.start`, `ThreadPoolExecutor.submit`, `mlflow.start_run`,
`MlflowClient.log_metric`/`log_batch`, MLflow's current experiment (the step's, in its context:
`from mlflow import start_run` creates its runs there too) and tracing's run lookup; the last
one to leave takes them out.
"""

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zenml.logger import get_logger

from tracker_flavor.concurrency.locks import Shared
from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow.internals import NO_STEP, Internals, NoStep

if TYPE_CHECKING:
    from mlflow.entities import Metric, Run
    from mlflow.store.tracking.abstract_store import AbstractStore

logger = get_logger(__name__)

WRITES = frozenset(
    {
        "log_metric", "log_param", "set_tag", "delete_tag", "log_batch", "log_inputs",
        "log_outputs", "log_metric_async", "log_param_async", "set_tag_async", "log_batch_async",
    }
)  # fmt: skip
"""The tracking store's calls that write values into a run."""


@dataclass(eq=False)
class StepContext:
    """The run a step's code logs into, and the runs its threads left open."""

    run: "Run"
    metric_step: int | None = None
    """MLflow's step of a metric logged into `run` without one (see `metric_step`)."""
    step_name: str = ""
    tracking_uri: str | None = None
    """The tracking URI the step's code logged through while the step ran."""
    left_open: list[str] = field(default_factory=list)
    ended: bool = False
    """The step ended; threads it started may still run, and log."""
    tasks: int = 0
    """The step's threads and pool tasks running now."""
    dropped: int = 0
    """Values its threads logged after it ended that its run could no longer take."""
    reported: int = 0
    """Of those, the ones counted in a log line already."""


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
    step (None, or MLflow's `NoStep` marker) at its own position, so one key logged by two steps
    is two points, not one hidden behind the other. An explicit step, and values for any other
    run, stay as they are (the marker as a plain 0).
    """
    if step is not None and type(step) is not NoStep:
        return step
    if context is None or context.metric_step is None or target_run_id != context.run.info.run_id:
        return None if step is None else 0
    return context.metric_step


Place = tuple[int, str]
"""A parameter's position in a call's signature, and its name."""


def places(function: Callable[..., Any], *names: str) -> list[Place]:
    """Return where `function` takes each of `names`."""
    parameters = list(inspect.signature(function).parameters)
    return [(parameters.index(name), name) for name in names]


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], place: Place) -> Any:
    """Return a call's argument at `place` (None if not given)."""
    index, name = place
    return args[index] if len(args) > index else kwargs.get(name)


def replaced(
    args: tuple[Any, ...], kwargs: dict[str, Any], place: Place, value: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return a call's arguments with the one at `place` set to `value`."""
    index, name = place
    if len(args) > index:
        return (*args[:index], value, *args[index + 1 :]), kwargs
    return args, {**kwargs, name: value}


def at_step(metric: "Metric", step: int | None) -> "Metric":
    """Return `metric` at MLflow step `step` (0 for None)."""
    from mlflow.entities import Metric

    return Metric.from_dictionary({**metric.to_dictionary(), "step": step or 0})


def lands(context: StepContext | None, store_uri: str) -> bool:
    """Tell whether a value logged in `context` into the store at `store_uri` may go there.

    Always while the step runs. After it ended, only into the store the step logged to: its
    run is in no other (the process's own tracking URI is back after its last step).
    """
    return context is None or not context.ended or store_uri == context.tracking_uri


def values_in(call: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Return how many values a store's write call carries: a batch's each, else one."""
    if not call.startswith("log_batch"):
        return 1
    batch = enumerate(("metrics", "params", "tags"), start=1)  # after the run id
    return sum(len(argument(args, kwargs, place) or ()) for place in batch)


class LateStore:
    """The tracking store a thread sees when its step ended and its run is not in the real one.

    Writes into the runs the thread holds from its step are dropped and counted; other calls (a
    read, a write into a run of the user's own) go to the real store.
    """

    def __init__(
        self,
        threads: "StepThreads",
        context: StepContext,
        run_ids: set[str],
        real: Callable[[], "AbstractStore"],
    ) -> None:
        self._threads = threads
        self._context = context
        self._run_ids = run_ids
        self._real = real

    def __getattr__(self, name: str) -> Any:
        if name not in WRITES:
            return getattr(self._real(), name)

        def write(*args: Any, **kwargs: Any) -> Any:
            run_id = kwargs.get("run_id", args[0] if args else None)
            if run_id not in self._run_ids:
                return getattr(self._real(), name)(*args, **kwargs)
            self._threads.drop(self._context, values_in(name, args, kwargs))
            if name.endswith("_async"):
                from mlflow.utils.async_logging.run_operations import RunOperations

                return RunOperations([])  # type: ignore[no-untyped-call]
            return None

        return write


def detached(thread: threading.Thread) -> None:
    """Start one of the tracker's own threads outside any step's context."""
    contextvars.Context().run(thread.start)


class StepThreads:
    """The step context of each thread, and the hooks that hand it on while steps run."""

    def __init__(self, seam: Internals) -> None:
        self._seam = seam
        self.current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
            "mlflow_plus_step", default=None
        )
        """The step whose code (or a thread it started) runs in this context."""
        self._originals: dict[str, Any] = {}
        self._hooks = Shared(self._install, self._uninstall)
        self._store_rule: Callable[..., AbstractStore] | None = None
        """MLflow's own store lookup, while `install` has the late-value hook in its place."""
        self._guard = threading.Lock()
        self._dropping: list[StepContext] = []
        """Steps whose threads dropped values not counted in a log line yet."""

    def enter(self) -> None:
        """Install the hooks for one more running step (the first step installs them)."""
        self._hooks.enter()

    def leave(self) -> None:
        """Undo one `enter`; the last one takes the hooks out."""
        self._hooks.leave()

    def install(self) -> None:
        """Put in the store lookup that judges late values (once; for the runtime's lifetime).

        A step's thread may log long after the last step took the step hooks out, and a
        library's thread started in a step may never end: this hook is in while the runtime
        is, and outside a step's threads it only reads a context variable.
        """
        import mlflow

        if self._store_rule is not None or (get_store := self._seam.store_rule()) is None:
            return
        self._store_rule = get_store

        def store_for(store_uri: str | None = None, artifact_uri: str | None = None) -> Any:
            context = self.current.get()
            if context is None or lands(context, store_uri or mlflow.get_tracking_uri()):
                return get_store(store_uri, artifact_uri)
            runs = {context.run.info.run_id, *self._seam.active_run_ids()}
            return LateStore(self, context, runs, lambda: get_store(store_uri, artifact_uri))

        self._seam.set_store_rule(store_for)

    def uninstall(self) -> None:
        """Take every hook out whoever still runs (a reset)."""
        self._hooks.reset()
        if self._store_rule is not None:
            self._seam.set_store_rule(self._store_rule)
            self._store_rule = None

    def begin(self, run: "Run", metric_step: int | None = None, step_name: str = "") -> None:
        """Make `run` the step's run for this context and the threads started from it."""
        import mlflow

        uri = mlflow.get_tracking_uri()
        self.current.set(StepContext(run, metric_step, step_name, uri))

    def end(self) -> list[str]:
        """End this context's step; return the runs its threads left open, oldest first."""
        context = self.current.get()
        self.current.set(None)
        if context is None:
            return []
        context.ended = True
        return list(context.left_open)

    def drop(self, context: StepContext, values: int) -> None:
        """Count values a thread of the ended step logged that its run cannot take; warn once."""
        with self._guard:
            first = context.dropped == 0
            context.dropped += values
            if context not in self._dropping:
                self._dropping.append(context)
        if first:
            logger.warning(
                "A thread started by step %r logged to MLflow after the step ended, when the "
                "step's run %s is no longer in the process's tracking store (%s): its values are "
                "dropped and counted.",
                context.step_name,
                context.run.info.run_id,
                redact_credentials(context.tracking_uri or ""),
            )

    def report_dropped(self, context: StepContext | None = None) -> None:
        """Log the count of values dropped since the last count, of `context`'s threads or all."""
        with self._guard:
            due = [c for c in self._dropping if context is None or c is context]
            for done in due:
                self._dropping.remove(done)
            counts = [(c.step_name, c.dropped - c.reported) for c in due]
            for done in due:
                done.reported = done.dropped
        for step_name, count in counts:
            logger.info(
                "Values logged to MLflow by threads of step %r after the step ended, dropped: %d.",
                step_name,
                count,
            )

    def _in_step(
        self, context: StepContext, work: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run `work` with the step's run active on this thread; keep what it leaves open."""
        self.current.set(context)
        with self._guard:
            context.tasks += 1
        try:
            run_id = context.run.info.run_id
            if run_id in self._seam.active_run_ids():  # a pool's worker the step started
                return work(*args, **kwargs)
            self._seam.push_active_run(context.run)
            try:
                return work(*args, **kwargs)
            finally:
                context.left_open += self._seam.pop_active_runs(run_id)
        finally:
            with self._guard:
                context.tasks -= 1
                done = context.ended and context.tasks == 0
            if done:
                self.report_dropped(context)

    def _install(self) -> None:
        """Put the hooks in place."""
        import mlflow
        from mlflow import MlflowClient
        from mlflow.tracking import fluent

        start = threading.Thread.start
        submit = ThreadPoolExecutor.submit
        start_run = fluent.start_run
        self._originals = {"start": start, "submit": submit, "start_run": start_run}

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

        self._seam.set_step_default(NO_STEP)
        client_log_metric, client_log_batch = MlflowClient.log_metric, MlflowClient.log_batch
        self._originals.update(log_metric=client_log_metric, log_batch=client_log_batch)
        # Positions in the calls' signatures (self first): these run at every logged value.
        run_at, step_at = places(client_log_metric, "run_id", "step")
        metrics_at = places(client_log_batch, "metrics")[0]

        @functools.wraps(client_log_metric)
        def log_metric_in_step(*args: Any, **kwargs: Any) -> Any:
            run_id, step = argument(args, kwargs, run_at), argument(args, kwargs, step_at)
            step = metric_step(self.current.get(), run_id, step)
            args, kwargs = replaced(args, kwargs, step_at, step)
            return client_log_metric(*args, **kwargs)

        @functools.wraps(client_log_batch)
        def log_batch_in_step(*args: Any, **kwargs: Any) -> Any:
            metrics = argument(args, kwargs, metrics_at) or ()
            if not any(type(metric.step) is NoStep for metric in metrics):
                return client_log_batch(*args, **kwargs)
            context, run_id = self.current.get(), argument(args, kwargs, run_at)
            placed = [
                at_step(metric, metric_step(context, run_id, metric.step)) for metric in metrics
            ]
            args, kwargs = replaced(args, kwargs, metrics_at, placed)
            return client_log_batch(*args, **kwargs)

        MlflowClient.log_metric = log_metric_in_step  # type: ignore[method-assign]
        MlflowClient.log_batch = log_batch_in_step  # type: ignore[method-assign]
        experiment = self._seam.experiment_rule()
        if experiment is not None:
            self._originals["experiment"] = experiment

            def experiment_in_step() -> str | None:
                # Runs started through any name, and their models and traces, join the step's.
                context = self.current.get()
                return experiment() if context is None else context.run.info.experiment_id

            self._seam.set_experiment_rule(experiment_in_step)
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
        from mlflow import MlflowClient
        from mlflow.tracking import fluent

        threading.Thread.start = self._originals["start"]  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = self._originals["submit"]  # type: ignore[method-assign]
        fluent.start_run = mlflow.start_run = self._originals["start_run"]
        self._seam.set_step_default(None)  # first: no marker reaches the unhooked client
        MlflowClient.log_metric = self._originals["log_metric"]  # type: ignore[method-assign]
        MlflowClient.log_batch = self._originals["log_batch"]  # type: ignore[method-assign]
        if "latest" in self._originals:
            self._seam.set_latest_active_run_rule(self._originals["latest"])
        if "experiment" in self._originals:
            self._seam.set_experiment_rule(self._originals["experiment"])
        self._originals = {}
