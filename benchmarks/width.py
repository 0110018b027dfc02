"""Width sweep: a dynamic map and a static fan-out, ever wider, with and without the tracker."""

import time
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.breakdown import Breakdown, Spent
from benchmarks.context import Bench, median

DYNAMIC, STATIC = "dynamic map", "static fan-out"
RUN_KINDS = tuple(
    f"/api/2.0/mlflow/{kind}"
    for kind in ("experiments/", "runs/search", "runs/create", "runs/update")
)
"""What a unified run asks once: the experiment, the parent's search, creation and end."""
WATCHER_SECONDS_PER_STEP = 1.0
"""A generous bound on the watcher's work per step after a run, to wait for it."""


@dataclass
class WidthPoint:
    """One run of a wide pipeline."""

    shape: str
    width: int
    tracked: bool
    steps: int = 0
    wall_seconds: float = 0.0
    settle_seconds: float = 0.0
    """How long the tracker's watcher went on after the run returned (statuses, outputs)."""
    hook_ms: list[float] = field(default_factory=list)
    """Tracker time of each step after the first (which resolves the parent run)."""
    first_hook_ms: float = 0.0
    requests: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    """MLflow requests of the run, by kind."""
    tracker_store_calls: int = 0
    """Store calls in the tracker's hooks, at run start and in its watcher thread."""
    hook_store_calls: list[int] = field(default_factory=list)
    hook_store_records: list[int] = field(default_factory=list)
    watcher_store_calls: int = 0
    store_calls: int = 0
    """All store calls of the run, ZenML's own included."""
    parts: dict[str, Spent] = field(default_factory=dict)
    """Where the run's time went, by part of the tracker (benchmarks/breakdown.py)."""

    @property
    def hook_ms_per_step(self) -> float:
        """Return the median tracker time of a step after the first."""
        return median(self.hook_ms)

    @property
    def run_requests(self) -> int:
        """Return the requests a unified run makes once, whatever its width."""
        return sum(n for kind, n in self.kinds.items() if kind.startswith(RUN_KINDS))

    @property
    def step_requests(self) -> float:
        """Return the requests per step beyond the run's own."""
        return self.per_step(self.requests - self.run_requests)

    def per_step(self, total: int) -> float:
        """Return `total` divided over the run's steps."""
        return total / self.steps if self.steps else 0.0


def run_width(bench: Bench, shape: str, width: int, tracked: bool) -> WidthPoint:
    """Run the pipeline of `shape` at `width` once and measure it."""
    from testsupport.benchmark_pipelines import bench_fan, bench_map
    from testsupport.probe import wait_for_watcher

    pipeline = bench_map if shape == DYNAMIC else bench_fan
    point = WidthPoint(shape, width, tracked)
    probe = bench.probe
    with probe.run() as samples, Breakdown().measure() as point.parts:
        before, _ = bench.proxy.counts()
        start = time.perf_counter()
        pipeline(width=width, tracked=tracked)
        point.wall_seconds = time.perf_counter() - start
        # The watcher's settlements (statuses, outputs) belong to this run.
        wait_for_watcher(60 + WATCHER_SECONDS_PER_STEP * (width + 1))
        point.settle_seconds = time.perf_counter() - start - point.wall_seconds
        point.kinds = bench.proxy.counts()[0] - before
        point.requests = point.kinds.total()
    point.steps = width + 1
    point.store_calls = probe.store_calls
    point.watcher_store_calls = probe.watcher_store_calls
    point.tracker_store_calls = (
        probe.run_start_store_calls
        + probe.watcher_store_calls
        + sum(sample.store_calls for sample in samples)
    )
    if samples:
        point.first_hook_ms = samples[0].hook_seconds * 1000
        point.hook_ms = [sample.hook_seconds * 1000 for sample in samples[1:]]
        point.hook_store_calls = [sample.store_calls for sample in samples[1:]]
        point.hook_store_records = [sample.store_records for sample in samples[1:]]
    return point


def sweep(
    bench: Bench, dynamic: tuple[int, ...], static: tuple[int, ...], untracked_up_to: int
) -> list[WidthPoint]:
    """Run every shape and width tracked, and untracked up to a width; return the points."""
    from benchmarks.context import NONE, PLUS

    points = []
    for shape, widths in ((STATIC, static), (DYNAMIC, dynamic)):
        for width in widths:
            for tracked in (True, False) if width <= untracked_up_to else (True,):
                bench.activate(PLUS if tracked else NONE)
                print(f"width: {shape} x {width}, tracker {'on' if tracked else 'off'}", flush=True)
                points.append(run_width(bench, shape, width, tracked))
    return points
