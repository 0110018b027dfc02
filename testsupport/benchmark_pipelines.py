"""The pipelines the benchmark runs with each tracker (and without one)."""

import time
from typing import Annotated, Any

import mlflow
from zenml import pipeline, step

LINEAR_STEPS = 10
HISTORY_STEPS = 5
logging_seconds: dict[str, float] = {}
"""Seconds each points step spent in its logging loop, by metric key (same process)."""
QUIET = {"enable_cache": False, "enable_step_logs": False, "enable_artifact_metadata": False}
"""Step logs and artifact metadata off: ZenML's own work per step is the same for every variant."""


@step
def work(previous: int, log: bool) -> int:
    """Log one metric (when tracked) and pass the value on."""
    if log:
        mlflow.log_metric("value", previous, step=previous)
    return previous + 1


@step
def shard(width: int) -> list[int]:
    """Return the items a wide pipeline maps over."""
    return list(range(width))


@step
def item(x: int) -> int:
    """One mapped item: log one metric when the tracker opened a run."""
    if mlflow.active_run() is not None:
        mlflow.log_metric("value", x, step=x)
    return x


@step
def log_points(key: str, count: int, mode: str = "tracker", uri: str = "") -> int:
    """Log `count` points of metric `key`, one call per point (`mode`: see benchmarks/points.py)."""
    start = time.perf_counter()
    if mode == "bare":  # the loop alone: the floor the other modes are compared with
        values = [index * 0.001 for index in range(count)]
        del values
    elif mode == "mlflow-async":  # MLflow's own async logging, no tracker, until all is sent
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(run_name=key):
                for index in range(count):
                    mlflow.log_metric(key, index * 0.001, step=index, synchronous=False)
                mlflow.flush_async_logging()
        finally:
            mlflow.set_tracking_uri("")
    else:
        for index in range(count):
            mlflow.log_metric(key, index * 0.001, step=index)
    logging_seconds[key] = time.perf_counter() - start
    return count


@pipeline(**QUIET)  # type: ignore[call-overload]
def bench_linear(tracked: bool = True, steps: int = LINEAR_STEPS) -> None:
    """Run steps in a line, each logging one metric."""
    stage = work.with_options(experiment_tracker=True) if tracked else work
    value = 0
    for _ in range(steps):
        value = stage(value, log=tracked)


@pipeline(dynamic=True, **QUIET)  # type: ignore[call-overload]
def bench_map(width: int = 10, tracked: bool = True) -> None:
    """Map one step over `width` items (a dynamic pipeline)."""
    tracker = {"experiment_tracker": tracked}
    item.with_options(**tracker).map(shard.with_options(**tracker)(width=width))


@pipeline(**QUIET)  # type: ignore[call-overload]
def bench_fan(width: int = 10, tracked: bool = True) -> None:
    """Run one step, then `width` leaves after it (a static pipeline)."""
    stage = work.with_options(experiment_tracker=True) if tracked else work
    root = stage(0, log=tracked)
    for index in range(width):
        stage(root, log=tracked, id=f"leaf_{index}")


@pipeline(**QUIET)  # type: ignore[call-overload]
def bench_points(
    key: str = "points", count: int = 2000, mode: str = "tracker", uri: str = ""
) -> None:
    """Log `count` metric points in one step."""
    tracked = log_points.with_options(experiment_tracker=mode == "tracker")
    tracked(key=key, count=count, mode=mode, uri=uri)


@step
def fit_model() -> "Annotated[Any, 'model']":
    """Fit a small scikit-learn model (logged and registered by the tracker's settings)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pipeline(**QUIET)  # type: ignore[call-overload]
def bench_model(registered_model_name: str = "bench-model") -> None:
    """One step whose model output the tracker logs and registers, with lineage and reports."""
    fit_model.with_options(
        experiment_tracker=True,
        settings={
            "experiment_tracker": {
                "log_model": "model",
                "registered_model_name": registered_model_name,
            }
        },
    )()
