"""MLflow-side bookkeeping: experiments, the one parent run per ZenML run, and run statuses.

A parent run is identified by its `zenml.pipeline_run_id` tag, never by its name. Lookups go
from cheapest to dearest: this process's cache, the id ZenML recorded as pipeline-run metadata,
and, under a cross-process lock, a tag search and creation (see docs/design.md).
"""

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from tracker_flavor import internals, tags
from tracker_flavor.coordination import creation_lock

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"

_experiment_ids: dict[tuple[str, str], str] = {}
_parent_ids: dict[tuple[str, str], str] = {}
_locks: dict[tuple[str, ...], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: tuple[str, ...]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def experiment_id(
    client: "MlflowClient", tracking_uri: str, name: str, artifact_location: str | None
) -> str:
    """Return the id of experiment `name`, creating it if needed (cached for the process)."""
    from mlflow.exceptions import MlflowException

    key = (tracking_uri, name)
    if key in _experiment_ids:
        return _experiment_ids[key]
    with _lock_for(("experiment", *key)):
        if key in _experiment_ids:
            return _experiment_ids[key]
        experiment = client.get_experiment_by_name(name)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            raise ValueError(
                f"MLflow experiment {name!r} is deleted: restore it "
                "(`mlflow experiments restore`) or set experiment_name to another name."
            )
        if experiment is None:
            try:
                found = client.create_experiment(name, artifact_location=artifact_location)
            except MlflowException:
                # Another process created it first.
                again = client.get_experiment_by_name(name)
                if again is None:
                    raise
                found = again.experiment_id
        else:
            found = experiment.experiment_id
        _experiment_ids[key] = found
        return found


def find_parent_runs(client: "MlflowClient", exp_id: str, pipeline_run_id: str) -> list["Run"]:
    """Return the active parent runs tagged with `pipeline_run_id`, canonical one first."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{tags.PIPELINE_RUN_ID}` = '{pipeline_run_id}'",
        max_results=50,
        order_by=["attributes.start_time ASC"],
    )
    parents = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    return sorted(parents, key=lambda run: (run.info.start_time, run.info.run_id))


def resolve_parent_run(
    client: "MlflowClient",
    tracking_uri: str,
    exp_id: str,
    pipeline_run_id: str,
    run_name: str,
    run_tags: Mapping[str, str],
    recorded: Callable[[], str | None],
    record: Callable[[str], None],
) -> tuple[str, "Run | None"]:
    """Return the parent run id, and the run itself if this call fetched or created it.

    `recorded` reads the parent id ZenML has recorded for the run (sparing the search), and
    `record` records one; creation happens only under the cross-process creation lock.
    """
    key = (tracking_uri, pipeline_run_id)
    with _lock_for(key):
        if key in _parent_ids:
            return _parent_ids[key], None
        if known := recorded():
            _parent_ids[key] = known
            return known, None
        with creation_lock(pipeline_run_id, recorded) as known:
            if known:
                _parent_ids[key] = known
                return known, None
            existing = find_parent_runs(client, exp_id, pipeline_run_id)
            parent = (
                existing[0]
                if existing
                else client.create_run(exp_id, run_name=run_name, tags=dict(run_tags))
            )
            record(parent.info.run_id)
        _parent_ids[key] = parent.info.run_id
        return parent.info.run_id, parent


def create_step_run(
    client: "MlflowClient",
    exp_id: str,
    parent_id: str,
    step_name: str,
    run_tags: Mapping[str, str],
) -> "Run":
    """Create the child run of one step attempt under the parent run."""
    return client.create_run(
        exp_id,
        run_name=step_name,
        tags={**run_tags, MLFLOW_PARENT_RUN_ID: parent_id},
    )


def placeholder_run(run_id: str, exp_id: str, run_name: str) -> "Run":
    """Return a RUNNING run object for a run known only by id, without a request."""
    from mlflow.entities import Run, RunData

    info = internals.run_info(
        run_id=run_id,
        experiment_id=exp_id,
        user_id="",
        status="RUNNING",
        start_time=int(time.time() * 1000),
        end_time=None,
        lifecycle_stage="active",
        run_name=run_name,
    )
    return Run(info, RunData())
