"""Pipelines the integration tests run for real."""

from collections.abc import Callable

import mlflow
from mlflow import log_metric, log_metrics  # names bound before any step starts
from zenml import pipeline, step
from zenml.enums import ArtifactType, ExecutionMode
from zenml.materializers.base_materializer import BaseMaterializer

TRACKER = "mlflow_plus"


@step(experiment_tracker=TRACKER)
def produce(count: int = 3, config: dict | None = None) -> int:
    for i in range(count):
        mlflow.log_metric("produced", i, step=i)
    mlflow.log_metric("score", count)  # a key the next step logs too
    return count


@step(experiment_tracker=TRACKER)
def consume(value: int, factor: float = 2.0) -> float:
    mlflow.log_metric("consumed", value * factor)
    log_metric("score", value * factor)
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
    log_metric("stage", 1.0)  # a key `total` logs too
    return list(range(count))


@step(experiment_tracker=TRACKER)
def square(x: int) -> int:
    for i in range(10):
        mlflow.log_metric(f"square_{x}", x * x + i, step=i)
    return x * x


@step(experiment_tracker=TRACKER)
def total(values: list[int]) -> int:
    mlflow.log_metric("total", sum(values))
    log_metrics({"stage": 2.0})
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


class Unsaveable:
    """A step output that ZenML cannot store."""


class FailingMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Unsaveable,)
    ASSOCIATED_ARTIFACT_TYPE = ArtifactType.DATA

    def save(self, data: Unsaveable) -> None:
        raise OSError("disk full")


@step(experiment_tracker=TRACKER, output_materializers=FailingMaterializer)
def unsaveable() -> Unsaveable:
    # Fails after the tracker's cleanup hook: ZenML stores outputs afterwards.
    mlflow.log_metric("computed", 1.0)
    return Unsaveable()


@pipeline(enable_cache=False)
def output_not_saved() -> None:
    unsaveable()


faults: dict[str, Callable[[], None]] = {}
"""Actions a test registers for `log_through_fault` to run mid-step (same process)."""


@step(experiment_tracker=True)
def log_through_fault(fault: str, first: int, during: int, pause: float, last: int) -> int:
    """Log `first` points, start the fault, log `during`, wait `pause` s, log `last`."""
    import time

    total = first + during + last
    for i in range(total):
        if i == first:
            mlflow.flush_async_logging()
            faults[fault]()
        if i == first + during:
            time.sleep(pause)
        mlflow.log_metric("faulted", i, step=i)
    if not during and not last:
        faults[fault]()
    return total


@pipeline(enable_cache=False)
def through_fault(
    fault: str, first: int = 0, during: int = 0, pause: float = 0.0, last: int = 0
) -> None:
    log_through_fault(fault=fault, first=first, during=during, pause=pause, last=last)


@step(experiment_tracker=True)
def log_bad_values(good: int) -> int:
    """Log good points around bad ones, in the user's own nested run and in the step's run."""
    with mlflow.start_run(nested=True) as own:
        for i in range(good):
            if i == good // 2:
                mlflow.log_metric("bad name!", 1.0, step=i)
            mlflow.log_metric("own", i, step=i)
        mlflow.log_param("lr", "0.1")
        mlflow.log_param("lr", "0.2")  # MLflow refuses to change a param: only this is lost
    mlflow.set_tag("own_run", own.info.run_id)
    for i in range(good):
        mlflow.log_metric("steps", i, step=i)
        mlflow.log_metric("nan", float("nan"), step=i)  # NaN metrics are valid values
    return good


@pipeline(enable_cache=False)
def bad_values(good: int = 99) -> None:
    log_bad_values(good=good)


@step(experiment_tracker=True)
def square_with_a_bad_value(x: int) -> int:
    """Log ten points; the step for 3 also logs an invalid metric name and a changed param."""
    for i in range(10):
        mlflow.log_metric(f"square_{x}", x * x + i, step=i)
        if x == 3 and i == 5:
            mlflow.log_metric("bad name!", 1.0)
            mlflow.log_param("shared", "first")
            mlflow.log_param("shared", "changed")
    return x * x


@pipeline(dynamic=True, enable_cache=False)
def fan_out_with_a_bad_value(count: int = 8) -> None:
    tracked = {"experiment_tracker": True}
    squares = square_with_a_bad_value.map(items.with_options(**tracked)(count=count))
    total.with_options(**tracked)(squares)


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


@step(experiment_tracker=True)
def fit_autologged(alpha: float = 0.5) -> float:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    x, y = load_diabetes(return_X_y=True)
    return float(Ridge(alpha=alpha).fit(x, y).score(x, y))


@pipeline(enable_cache=False, settings={"experiment_tracker": {"nested": True, "autolog": True}})
def autologged() -> None:
    fit_autologged()


_probe_started = __import__("threading").Event()


@step(experiment_tracker=TRACKER, settings={"experiment_tracker": {"autolog": True}})
def autolog_probe(x: int) -> bool:
    """Tell whether autologging is on at the end; item 0 ends first, while item 1 runs."""
    import time

    from mlflow.utils.autologging_utils import autologging_is_disabled

    if x == 0:
        _probe_started.wait(30)
        return not autologging_is_disabled("mlflow")
    _probe_started.set()
    deadline = time.monotonic() + 3  # item 0's cleanup turned it off within this, before the fix
    while time.monotonic() < deadline and not autologging_is_disabled("mlflow"):
        time.sleep(0.05)
    return not autologging_is_disabled("mlflow")


@pipeline(dynamic=True, enable_cache=False)
def autolog_overlap() -> None:
    autolog_probe.map(items(count=2))


@step(experiment_tracker=TRACKER)
def active_run_probe(previous: str = "") -> str:
    """Return the name and start time of the step's active MLflow run."""
    run = mlflow.active_run()
    assert run is not None
    return f"{run.info.run_name}|{run.info.start_time}"


@pipeline(enable_cache=False)
def active_runs() -> None:
    active_run_probe(previous=active_run_probe())


@step(experiment_tracker=True)
def measure(count: int = 3, config: dict | None = None) -> int:
    for i in range(count):
        mlflow.log_metric("measured", i, step=i)
    mlflow.log_param("user_param", "u")
    mlflow.set_tag("user_tag", "t")
    return count


@step(experiment_tracker=True)
def evaluate(value: int, factor: float = 2.0) -> float:
    mlflow.log_metric("evaluated", value * factor)
    return value * factor


@pipeline(enable_cache=False)
def measured(count: int = 3) -> None:
    """Two steps with params, tags and metrics, on whatever tracker the stack has."""
    evaluate(measure(count=count, config={"opt": {"lr": 0.1}}))


@step(experiment_tracker=True)
def log_after(value: int) -> int:
    mlflow.log_metric("after", value)
    return value


@pipeline(enable_cache=False)
def fault_then_log(fault: str, first: int = 0) -> None:
    """`log_through_fault` logs `first` points and then runs the fault; a second step follows."""
    log_after(log_through_fault(fault=fault, first=first, during=0, pause=0.0, last=0))
