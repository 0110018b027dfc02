"""History sweep: the same 5-step pipeline into experiments holding few and many runs."""

from collections import Counter
from dataclasses import dataclass, field

from benchmarks.context import PLUS, Bench, median


@dataclass
class HistoryPoint:
    """The 5-step pipeline's runs into an experiment of `runs` runs."""

    runs: int
    fill_seconds: float = 0.0
    hook_ms: list[float] = field(default_factory=list)
    """Tracker time per step of each repetition: its hooks and the run start's, over the steps."""
    requests: list[int] = field(default_factory=list)
    """MLflow requests of each repetition (whole run, its watcher's settlements included)."""
    response_kb: list[float] = field(default_factory=list)
    """Kilobytes the tracking server answered in each repetition."""
    store_calls: list[int] = field(default_factory=list)
    """The tracker's ZenML store calls of each repetition, in its hooks and at run start."""
    kinds: Counter[str] = field(default_factory=Counter)
    """MLflow requests of the last repetition, by kind."""

    @property
    def hook_ms_per_step(self) -> float:
        """Return the median over repetitions of the tracker time per step."""
        return median(self.hook_ms)


def run_once(bench: Bench, point: HistoryPoint, record: bool) -> None:
    """Run the 5-step pipeline into the experiment of `point`; record what it cost if `record`."""
    from testsupport.benchmark_pipelines import HISTORY_STEPS, bench_linear
    from testsupport.probe import wait_for_watcher

    pipeline = bench_linear.with_options(
        settings={"experiment_tracker": {"experiment_name": f"history-{point.runs}"}}
    )
    requests, answered = bench.proxy.counts()
    with bench.probe.run() as samples:
        pipeline(steps=HISTORY_STEPS)
    wait_for_watcher()  # its settlements are this run's, and must not overlap the next one
    if not record:
        return
    requests_after, answered_after = bench.proxy.counts()
    point.kinds = requests_after - requests
    point.requests.append(point.kinds.total())
    point.response_kb.append((answered_after - answered).total() / 1000)
    point.store_calls.append(
        bench.probe.run_start_store_calls + sum(sample.store_calls for sample in samples)
    )
    seconds = bench.probe.run_start_seconds + sum(sample.hook_seconds for sample in samples)
    point.hook_ms.append(seconds * 1000 / HISTORY_STEPS)


def sweep(bench: Bench, sizes: tuple[int, ...], reps: int) -> list[HistoryPoint]:
    """Fill one experiment per size, then run the 5-step pipeline into each, alternating.

    A first, unrecorded run into each experiment looks its id up (once per process and
    experiment), so every recorded run does the same work.
    """
    from testsupport.history import fill

    backend = f"sqlite:///{bench.workdir / 'server' / 'mlflow.db'}"
    points = {}
    for size in sizes:
        print(f"history: filling an experiment with {size:,} runs", flush=True)
        points[size] = HistoryPoint(size, fill(backend, f"history-{size}", size))
    bench.activate(PLUS)
    for rep in range(reps + 1):
        for size in sizes if rep % 2 == 0 else reversed(sizes):
            print(f"history: {size:,} runs, {f'rep {rep}' if rep else 'warm-up'}", flush=True)
            run_once(bench, points[size], record=rep > 0)
    return list(points.values())
