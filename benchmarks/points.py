"""Per-point cost of mlflow.log_metric in a step: the tracker, MLflow's own async path, bare."""

import uuid
from dataclasses import dataclass, field

from benchmarks.context import NONE, PLUS, Bench, median

TRACKER, MLFLOW_ASYNC, BARE = "tracker", "mlflow-async", "bare"
MODES = {
    TRACKER: "mlflow_plus, async_logging on",
    MLFLOW_ASYNC: "MLflow's own async logging, no tracker",
    BARE: "the bare loop, no logging",
}


@dataclass
class PointsResult:
    """Repetitions of one mode: seconds until every point reached the server, and counts."""

    mode: str
    count: int
    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)

    @property
    def us_per_point(self) -> float:
        """Return the median time per point, microseconds."""
        return median(self.seconds) / self.count * 1e6

    @property
    def points_per_second(self) -> float:
        """Return the points per second reaching the server (median)."""
        return self.count / median(self.seconds) if self.seconds else 0.0


def delivered_points(server_url: str, run_name: str, key: str) -> int:
    """Count the points of metric `key` in the runs named `run_name` (read directly)."""
    from mlflow import MlflowClient

    client = MlflowClient(server_url)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"attributes.run_name = '{run_name}'")
    return sum(len(client.get_metric_history(run.info.run_id, key)) for run in runs)


def run_points(bench: Bench, mode: str, count: int) -> tuple[float, int, int]:
    """Run the points pipeline once; return (seconds until delivered, requests, delivered)."""
    from testsupport.benchmark_pipelines import bench_points, logging_seconds
    from testsupport.probe import wait_for_watcher

    bench.activate(PLUS if mode == TRACKER else NONE)
    key = f"points_{uuid.uuid4().hex[:8]}"
    before = bench.proxy.total
    with bench.probe.run() as samples:
        run = bench_points(key=key, count=count, mode=mode, uri=bench.proxy.url)
    wait_for_watcher()  # the tracker's outputs, sent after the step, count for this run
    requests = bench.proxy.total - before
    # The loop in the step, plus (tracker) the delivery before the step is reported finished.
    seconds = logging_seconds[key] + sum(sample.metadata_seconds for sample in samples)
    if mode == BARE:
        return seconds, requests, 0
    run_name = run.name if mode == TRACKER else key
    return seconds, requests, delivered_points(bench.server.url, run_name, key)


def sweep(bench: Bench, count: int, reps: int) -> list[PointsResult]:
    """Run every mode `reps` times, alternating; return their results."""
    results = {mode: PointsResult(mode, count) for mode in MODES}
    for rep in range(reps):
        for mode in list(MODES)[rep % len(MODES) :] + list(MODES)[: rep % len(MODES)]:
            print(f"points: {count:,} with {mode}, rep {rep + 1}", flush=True)
            seconds, requests, delivered = run_points(bench, mode, count)
            results[mode].seconds.append(seconds)
            results[mode].requests.append(requests)
            results[mode].delivered.append(delivered)
    return list(results.values())
