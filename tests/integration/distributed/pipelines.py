"""Pipelines whose steps the process harness runs as separate processes, like pods."""

import mlflow
from zenml import pipeline, step

POINTS = 20


@step(experiment_tracker=True)
def part(index: int) -> int:
    for i in range(POINTS):
        mlflow.log_metric(f"part_{index}", float(i), step=i)
    return index


@step(experiment_tracker=True)
def join(a: int, b: int, c: int, d: int, e: int, f: int = 0) -> int:
    mlflow.log_metric("joined", float(a + b + c + d + e + f))
    return a + b + c + d + e + f


@pipeline(enable_cache=False, settings={"experiment_tracker": {"nested": True}})
def fan_out() -> None:
    parts = [part(index=i, id=f"part_{i}") for i in range(6)]
    join(*parts)


@pipeline(enable_cache=False, settings={"experiment_tracker": {"nested": True}})
def six_steps() -> None:
    parts = [part(index=i, id=f"part_{i}") for i in range(5)]
    join(*parts)
