"""What a step logs from the threads it starts, the runs it starts and its traces land in its run."""

import logging
import time

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.thread_pipelines import (
    AFTER_LAST,
    AFTER_LAST_ERRORS,
    RELEASE_AFTER_LAST,
    WARM_POOL,
    threaded,
)
from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY, account

pytestmark = pytest.mark.integration

SERIES = {"own": 50, "thread": 100, "timer": 50, **{f"warm_{k}": 25 for k in range(4)}}
SERIES.update({f"fresh_{k}": 25 for k in range(4)})
# The series, a metric and a tag in the user's own run, a metric and a tag in the left-open one.
LOGGED = sum(SERIES.values()) + 4


def points(client: MlflowClient, run_id: str, key: str) -> list[int]:
    """Return the steps of the points of `key` in the run."""
    return sorted(point.step for point in client.get_metric_history(run_id, key))


def traces_of(client: MlflowClient, experiment_id: str, count: int) -> list:
    """Return the experiment's traces once `count` arrived (they are exported asynchronously)."""
    deadline = time.monotonic() + 20
    search = {"experiment_ids": [experiment_id], "include_spans": False}  # spans: MLflow 2 fails
    while len(found := client.search_traces(**search)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return list(found)


def test_threads_pools_own_runs_late_values_and_traces_land_in_the_steps_run(
    servers, tracker_stack, process_snapshot, caplog
):
    """Nested, then unified: the unified step lets the nested step's late thread log.

    The unified step's own late thread logs once the process has no step left: its step's run is
    in no store the process logs to then, so its values are dropped, warned about once, counted.
    """
    tracker_stack("plus_threads", tracking_uri=servers.plain.url)
    client = MlflowClient(servers.plain.url)
    in_default = {run.info.run_id for run in client.search_runs(["0"])}  # the server is shared
    WARM_POOL.submit(int).result()  # its workers exist before any step
    settings = {"log_step_parameters": False}
    runs = []
    for nested, release in ((True, False), (False, True)):
        options = {"experiment_tracker": {**settings, "nested": nested}}
        with caplog.at_level(logging.WARNING):
            run = threaded.with_options(settings=options)(release=release)
        runs.append(Client().get_pipeline_run(run.id).steps["log_from_threads"])
    with caplog.at_level(logging.INFO):
        RELEASE_AFTER_LAST.set()
        AFTER_LAST[0].join(60)
    assert not AFTER_LAST[0].is_alive() and AFTER_LAST_ERRORS == []
    assert {run.info.run_id for run in client.search_runs(["0"])} == in_default  # none new
    for step in runs:
        assert step.status == "completed"
        metadata = step.run_metadata
        step_run = client.get_run(metadata["mlflow_run_id"])
        run_id, experiment_id = step_run.info.run_id, step_run.info.experiment_id
        for key, count in SERIES.items():
            assert points(client, run_id, key) == list(range(count)), key
        # The late thread's are not the next's.
        assert account(metadata)[VALUES_DELIVERED_KEY] == LOGGED
        own = client.get_run(step_run.data.tags["users_own"])
        left_open = client.search_runs(
            [experiment_id], f"tags.kind = 'left_open' and tags.`mlflow.parentRunId` = '{run_id}'"
        )
        assert len(left_open) == 1
        for user_run in (own, left_open[0]):
            assert user_run.info.experiment_id == experiment_id
            assert user_run.data.tags["mlflow.parentRunId"] == run_id
            assert user_run.info.status == "FINISHED"
        sources = [
            trace.info.request_metadata.get("mlflow.sourceRun")
            for trace in traces_of(client, experiment_id, 2 * len(runs))
        ]
        assert sources.count(run_id) == 2  # @mlflow.trace and mlflow.start_span
    nested_step = runs[0].run_metadata["mlflow_run_id"]
    assert points(client, nested_step, "late") == list(range(5))
    late_warnings = [r for r in caplog.records if "after the step ended" in r.getMessage()]
    assert [r.levelno for r in late_warnings] == [logging.WARNING, logging.WARNING, logging.INFO]
    assert all("'log_from_threads'" in r.getMessage() for r in late_warnings)
    landed, dropped, count = (r.getMessage() for r in late_warnings)
    unified_run = runs[1].run_metadata["mlflow_run_id"]
    assert nested_step in landed and unified_run in dropped and "dropped" in dropped
    assert count.endswith("dropped: 6.")  # 5 points and a tag
    assert not client.get_metric_history(unified_run, "after_last")
    assert "after_last" not in client.get_run(unified_run).data.tags
