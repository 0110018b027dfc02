"""An MLflow experiment filled with many finished runs, fast: the history a tracker must not feel."""

import time
import uuid

BATCH = 500
"""Runs written per flush."""


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

    from tracker_flavor.runs import tags

    start = time.perf_counter()
    store = SqlAlchemyStore(backend_uri, "mlflow-artifacts:/")
    exp_id = store.create_experiment(experiment)
    now = int(time.time() * 1000)
    with store.ManagedSessionMaker(read_only=False) as session:  # a write (MLflow 3 asks)
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
