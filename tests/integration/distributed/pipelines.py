"""Pipelines whose steps the process harness runs as separate processes, like pods."""

import mlflow
from zenml import pipeline, step
from zenml.config.retry_config import StepRetryConfig

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


@step(experiment_tracker=True, retry=StepRetryConfig(max_retries=1, delay=0))
def gate(value: int, marker: str) -> int:
    """Hang while `marker` holds 'hang' (to be killed), else pass."""
    import time
    from pathlib import Path

    mlflow.log_metric("gate_started", 1.0)
    while Path(marker).read_text() == "hang":
        time.sleep(0.5)
    return value


@pipeline(enable_cache=False, settings={"experiment_tracker": {"nested": True}})
def gated(marker: str) -> None:
    gate(part(index=0), marker=marker)
