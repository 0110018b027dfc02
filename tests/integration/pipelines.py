"""Pipelines the integration tests run for real."""

import mlflow
from zenml import pipeline, step
from zenml.enums import ExecutionMode

TRACKER = "mlflow_plus"


@step(experiment_tracker=TRACKER)
def produce(count: int = 3, config: dict | None = None) -> int:
    for i in range(count):
        mlflow.log_metric("produced", i, step=i)
    return count


@step(experiment_tracker=TRACKER)
def consume(value: int, factor: float = 2.0) -> float:
    mlflow.log_metric("consumed", value * factor)
    return value * factor


@step(experiment_tracker=TRACKER)
def explode(value: int) -> int:
    mlflow.log_metric("before_failure", 1.0)
    raise RuntimeError("boom")


@step(experiment_tracker=TRACKER)
def independent() -> int:
    mlflow.log_metric("independent", 7.0)
    return 7


@pipeline(enable_cache=False)
def linear(count: int = 3) -> None:
    consume(produce(count=count, config={"opt": {"lr": 0.1}, "name": "x"}))


@pipeline(enable_cache=False)
def failing() -> None:
    explode(produce())


@pipeline(enable_cache=False, execution_mode=ExecutionMode.CONTINUE_ON_FAILURE)
def partly_failing() -> None:
    explode(produce())
    consume(independent())


@step(experiment_tracker=TRACKER)
def items(count: int = 8) -> list[int]:
    return list(range(count))


@step(experiment_tracker=TRACKER)
def square(x: int) -> int:
    for i in range(10):
        mlflow.log_metric(f"square_{x}", x * x + i, step=i)
    return x * x


@step(experiment_tracker=TRACKER)
def total(values: list[int]) -> int:
    mlflow.log_metric("total", sum(values))
    return sum(values)


@pipeline(dynamic=True, enable_cache=False)
def fan_out(count: int = 8) -> None:
    total(square.map(items(count=count)))


@step(experiment_tracker=TRACKER)
def fit(alpha: float = 0.5) -> float:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    return float(Ridge(alpha=alpha).fit(x, y).score(x, y))


@pipeline(enable_cache=False)
def fitting() -> None:
    fit()


_attempts: dict[str, int] = {}


@step(experiment_tracker=TRACKER)
def flaky(key: str) -> int:
    _attempts[key] = _attempts.get(key, 0) + 1
    mlflow.log_metric("attempt", _attempts[key])
    if _attempts[key] == 1:
        raise RuntimeError("first attempt fails")
    return _attempts[key]


@pipeline(enable_cache=False)
def retried(key: str) -> None:
    consume(flaky(key=key))


@step(experiment_tracker=True)
def log_through_outage(server_pid: int, delivered: int, lost: int) -> int:
    import psutil

    for i in range(delivered):
        mlflow.log_metric("outage", i, step=i)
    mlflow.flush_async_logging()  # these have arrived; the rest will not
    server = psutil.Process(server_pid)
    doomed = [server, *server.children(recursive=True)]
    for process in doomed:
        process.kill()
    psutil.wait_procs(doomed, timeout=30)
    for i in range(delivered, delivered + lost):
        mlflow.log_metric("outage", i, step=i)
    return delivered + lost


@pipeline(enable_cache=False)
def outage(server_pid: int, delivered: int = 1200, lost: int = 800) -> None:
    log_through_outage(server_pid=server_pid, delivered=delivered, lost=lost)


@step(experiment_tracker=TRACKER)
def stall(started: str) -> int:
    """Say it started (a file), then run until its process is killed."""
    import time
    from pathlib import Path

    Path(started).write_text("started")
    time.sleep(600)
    return 0


@pipeline(enable_cache=False)
def stalled(started: str) -> None:
    stall(started)
