"""The pipelines the benchmark runs with each tracker (and without one)."""

import time

import mlflow
from zenml import pipeline, step

LINEAR_STEPS = 10
logging_seconds: dict[str, float] = {}
"""Seconds each points step spent in its logging loop, by metric key (same process)."""


@step
def work(previous: int, log: bool) -> int:
    """Log one metric (when tracked) and pass the value on."""
    if log:
        mlflow.log_metric("value", previous, step=previous)
    return previous + 1


@step
def log_points(key: str, count: int) -> int:
    """Log `count` points of metric `key` with mlflow.log_metric, one call per point."""
    start = time.perf_counter()
    for index in range(count):
        mlflow.log_metric(key, index * 0.001, step=index)
    logging_seconds[key] = time.perf_counter() - start
    return count


@pipeline(
    enable_cache=False,
    enable_step_logs=False,
    enable_artifact_metadata=False,
)
def bench_linear(tracked: bool = True) -> None:
    """Ten steps in a line, each logging one metric."""
    stage = work.with_options(experiment_tracker=True) if tracked else work
    value = 0
    for _ in range(LINEAR_STEPS):
        value = stage(value, log=tracked)


@pipeline(
    enable_cache=False,
    enable_step_logs=False,
    enable_artifact_metadata=False,
)
def bench_points(key: str = "points", count: int = 2000) -> None:
    """One step logging `count` metric points."""
    log_points.with_options(experiment_tracker=True)(key=key, count=count)
