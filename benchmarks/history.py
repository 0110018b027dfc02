"""History sweep: the same 5-step pipeline into experiments holding few and many runs."""

import time
import uuid
from dataclasses import dataclass, field

from benchmarks.context import PLUS, Bench, median

BATCH = 500


@dataclass
class HistoryPoint:
    """The 5-step pipeline's runs into an experiment of `runs` runs."""

    runs: int
    fill_seconds: float = 0.0
    hook_ms: list[float] = field(default_factory=list)
    """Tracker time per step of each repetition: its hooks and the run start's, over the steps."""
    requests: list[int] = field(default_factory=list)
    """MLflow requests of each repetition (whole run)."""

    @property
    def hook_ms_per_step(self) -> float:
        """Return the median over repetitions of the tracker time per step."""
        return median(self.hook_ms)


def fill(backend_uri: str, experiment: str, count: int) -> float:
    """Create experiment `experiment` holding `count` finished runs of other pipeline runs.

    Each run gets what the tracker's runs carry (a run name and the `zenml.*` tags the parent
    lookup filters on), a parameter and a metric, written with MLflow's own store models into
    the server's database in one transaction: seconds, where one request per run takes minutes.
    """
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    from tracker_flavor import tags

    start = time.perf_counter()
    store = SqlAlchemyStore(backend_uri, "mlflow-artifacts:/")
    exp_id = store.create_experiment(experiment)
    now = int(time.time() * 1000)
    with store.ManagedSessionMaker() as session:
        for first in range(0, count, BATCH):
            for index in range(first, min(first + BATCH, count)):
                run_id = uuid.uuid4().hex
                name = f"old-{index}"
                metric = {"key": "value", "value": float(index), "timestamp": now, "step": 0}
                session.add(
                    SqlRun(
                        run_uuid=run_id, name=name, experiment_id=int(exp_id),
                        status="FINISHED", start_time=now - index, end_time=now,
                        lifecycle_stage="active", artifact_uri=f"mlflow-artifacts:/{run_id}",
                        source_type="UNKNOWN", source_name="", entry_point_name="",
                        source_version="", user_id="benchmark",
                        tags=[
                            SqlTag(key=MLFLOW_RUN_NAME, value=name),
                            SqlTag(key=tags.PIPELINE_RUN_ID, value=str(uuid.uuid4())),
                            SqlTag(key=tags.PIPELINE_NAME, value=experiment),
                        ],
                        params=[SqlParam(key="index", value=str(index))],
                        metrics=[SqlMetric(**metric, is_nan=False)],
                        latest_metrics=[SqlLatestMetric(**metric, is_nan=False)],
                    )
                )  # fmt: skip
            session.flush()
    return time.perf_counter() - start


def sweep(bench: Bench, sizes: tuple[int, ...], reps: int) -> list[HistoryPoint]:
    """Fill one experiment per size, then run the 5-step pipeline into each, alternating."""
    from testsupport.benchmark_pipelines import HISTORY_STEPS, bench_linear

    backend = f"sqlite:///{bench.workdir / 'server' / 'mlflow.db'}"
    points = {}
    for size in sizes:
        print(f"history: filling an experiment with {size:,} runs", flush=True)
        points[size] = HistoryPoint(size, fill(backend, f"history-{size}", size))
    bench.activate(PLUS)
    for rep in range(reps):
        for size in sizes if rep % 2 == 0 else reversed(sizes):
            print(f"history: {size:,} runs, rep {rep + 1}", flush=True)
            pipeline = bench_linear.with_options(
                settings={"experiment_tracker": {"experiment_name": f"history-{size}"}}
            )
            before = bench.proxy.total
            with bench.probe.run() as samples:
                pipeline(steps=HISTORY_STEPS)
            points[size].requests.append(bench.proxy.total - before)
            seconds = bench.probe.run_start_seconds + sum(s.hook_seconds for s in samples)
            points[size].hook_ms.append(seconds * 1000 / HISTORY_STEPS)
    return list(points.values())
