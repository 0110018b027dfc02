"""Where a tracked step's time goes: the tracker's parts, each timed in the thread it runs in.

The functions below are wrapped with timers for the width sweep's runs (a few microseconds per
call): wall time and the thread's CPU time, per part. A part nested in another is counted only
while its parent runs in the same thread (ZenML's step read inside the sending after the step,
not ZenML's own reads). What the launching thread spends beyond the untracked run and outside
these parts is ZenML's own extra work and waiting for the interpreter lock (the watcher's and the
batching thread's turns); it is shown as the remainder.
"""

import functools
import importlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from testsupport.probe import WATCHER_THREAD
from tracker_flavor.watcher.after_step import LINEAGE_THREAD, SENDER_THREAD

TRACKER = "tracker_flavor.tracker:MLflowPlusExperimentTracker"
STEP_END = "sent after the step, in the launching thread"
STEP_SENT = "sent after the step, on a thread of its own while the next step is launched"
BATCHING_THREAD = "mlflow-plus-batching"
COMMIT = "sqlalchemy.orm.session:Session.commit"
"""Where ZenML's SQL store commits (twice per metadata key: the value, then its link)."""


@dataclass(frozen=True)
class Part:
    """A function timed as one part of a step's cost."""

    label: str
    target: str
    """`module:attribute` or `module:Class.method`."""
    within: str | None = None
    """The part it is counted inside of (same thread); None: wherever it runs."""
    thread: str | None = None
    """Only calls in threads whose name starts with this count."""


PARTS = (
    Part("hook `prepare_step_run`", f"{TRACKER}.prepare_step_run"),
    Part(
        "the start request on the parent (tags, params)",
        "tracker_flavor.runs.steps:_log_on_parent",
        "hook `prepare_step_run`",
    ),
    Part("hook `get_step_run_metadata`", f"{TRACKER}.get_step_run_metadata"),
    Part(
        "waiting for the step's values to reach the server",
        "tracker_flavor.delivery.queue:BatchingQueue.settle",
        "hook `get_step_run_metadata`",
    ),
    Part(
        "ZenML saving the tracker's step metadata",
        "zenml.orchestrators.step_runner:publish_step_run_metadata",
    ),
    Part("hook `cleanup_step_run`", f"{TRACKER}.cleanup_step_run"),
    Part(
        "asking ZenML whether the run is complete (leaf steps)",
        "tracker_flavor.tracker:pipeline_outcome",
        "hook `cleanup_step_run`",
    ),
    Part(STEP_END, "tracker_flavor.watcher.watcher:Watcher.finish"),
    Part(
        "ZenML's step read (outputs, inputs)",
        "zenml.zen_stores.sql_zen_store:SqlZenStore.get_run_step",
        STEP_END,
    ),
    Part("outputs' upload (the report)", "tracker_flavor.watcher.outputs:upload", STEP_END),
    Part(
        "the run's artifact URI",
        "tracker_flavor.watcher.publisher:RestPublisher._run_info",
        "outputs' upload (the report)",
    ),  # fmt: skip
    Part(
        "ZenML saving the step's account of what was sent",
        "tracker_flavor.runs.metadata:record_step",
        STEP_END,
    ),
    Part(
        "waiting for what the step before sent beside it",
        "tracker_flavor.watcher.launches:wait",
    ),
    Part(STEP_SENT, "tracker_flavor.watcher.after_step:after_step", thread=SENDER_THREAD),
    Part(
        "outputs' upload (the report) on that thread",
        "tracker_flavor.watcher.outputs:upload",
        STEP_SENT,
    ),
    Part(
        "lineage (`log-inputs`), on a thread of its own beside the upload",
        "tracker_flavor.watcher.after_step:log_inputs",
        thread=LINEAGE_THREAD,
    ),
    Part("run start (`get_pipeline_run_metadata`)", f"{TRACKER}.get_pipeline_run_metadata"),
    Part(
        "the watcher's thread (polls, the parent's status)",
        "tracker_flavor.watcher.watcher:Watcher.check",
        thread=WATCHER_THREAD,
    ),
    Part(
        "the batching thread's requests",
        "tracker_flavor.delivery.queue:BatchingQueue._send",
        thread=BATCHING_THREAD,
    ),
)
LAUNCHING = tuple(p.label for p in PARTS if p.within is None and p.thread is None)
"""The top-level parts that run in the thread that launched the step."""


@dataclass
class Spent:
    """Time spent in one part: wall and thread CPU seconds, and calls."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0
    commits: int = 0
    """Database commits of ZenML's store made inside it (not inside a part nested in it)."""


@dataclass
class Breakdown:
    """Timers on the parts while a block runs."""

    spent: dict[str, Spent] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def measure(self) -> Iterator[dict[str, Spent]]:
        """Time the parts while the block runs; yield what they spent, filled in afterwards."""
        self.spent = {part.label: Spent() for part in PARTS}
        saved = []
        for part in PARTS:
            owner, name, original = _resolve(part.target)
            saved.append((owner, name, original))
            setattr(owner, name, self._timed(part, original))
        owner, name, original = _resolve(COMMIT)
        saved.append((owner, name, original))
        setattr(owner, name, self._committed(original))
        try:
            yield self.spent
        finally:
            for owner, name, original in reversed(saved):
                setattr(owner, name, original)

    def _timed(self, part: Part, original: Any) -> Any:
        local = self._local

        def counted() -> bool:
            if part.thread and not threading.current_thread().name.startswith(part.thread):
                return False
            return part.within is None or part.within in getattr(local, "active", ())

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not counted():
                return original(*args, **kwargs)
            active: list[str] = local.__dict__.setdefault("active", [])
            active.append(part.label)
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                active.pop()
                with self._guard:
                    spent = self.spent[part.label]
                    spent.seconds += time.perf_counter() - start
                    spent.cpu_seconds += time.thread_time() - cpu
                    spent.calls += 1

        return timed

    def _committed(self, original: Any) -> Any:
        local = self._local

        @functools.wraps(original)
        def commit(*args: Any, **kwargs: Any) -> Any:
            active = getattr(local, "active", None)
            if active:
                with self._guard:
                    self.spent[active[-1]].commits += 1
            return original(*args, **kwargs)

        return commit


def _resolve(target: str) -> tuple[Any, str, Any]:
    """Return (owner, attribute name, current value) of `module:attr` or `module:Class.attr`."""
    module_name, path = target.split(":")
    owner: Any = importlib.import_module(module_name)
    *classes, name = path.split(".")
    for cls in classes:
        owner = getattr(owner, cls)
    return owner, name, owner.__dict__[name]


def table(tracked: dict[str, Spent], steps: int, extra_seconds: float) -> str:
    """Render a run's parts per step; `extra_seconds`: its wall time beyond the untracked run."""
    lines = [
        "| part | ms per step | of it CPU, ms | calls per step | ZenML commits per step |",
        "| --- | --- | --- | --- | --- |",
    ]
    launching = 0.0
    for part in PARTS:
        spent = tracked[part.label]
        name = part.label if part.within is None else f"&nbsp;&nbsp;of it: {part.label}"
        if part.label in LAUNCHING:
            launching += spent.seconds
            name = f"**{name}**"
        lines.append(
            f"| {name} | {spent.seconds / steps * 1000:.1f} | "
            f"{spent.cpu_seconds / steps * 1000:.1f} | {spent.calls / steps:.2f} | "
            f"{spent.commits / steps:.1f} |"
        )
    rest = extra_seconds - launching
    lines += [
        f"| **the run's wall time beyond the untracked run** | **{extra_seconds / steps * 1000:.1f}"
        "** | – | – | – |",
        f"| of it outside the bold parts: ZenML's own extra work, waiting for the interpreter "
        f"lock | {rest / steps * 1000:.1f} | – | – | – |",
    ]
    return "\n".join(lines)
