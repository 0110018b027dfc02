"""One step attempt's MLflow runs: opened and made active when it starts, ended when it ends.

Once the parent is known (see parent.py), a unified step starts with one request (the parent's
tags and params in one `log-batch`) and a nested or mapped one with two or three (the parent's
last-step tag, the child's creation, its params unless they travel in the step's first batch);
the pipeline's params ride along in the parent's request of a process's first step. See
docs/benchmarks.md for the counts per step.
"""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from zenml.enums import ExecutionStatus

from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.mlflow import rest
from tracker_flavor.mlflow.errors import explained
from tracker_flavor.runs import metadata, mlflow_runs
from tracker_flavor.runs import parent as parents
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.outcome import FinalStatus, first_failed_step

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.metadata.metadata_types import MetadataType

    from tracker_flavor.config.component import MLflowPlusConfig
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.mlflow.process import MlflowProcess
    from tracker_flavor.runs.metadata import ParentRecords
    from tracker_flavor.runs.plan import StepPlan
    from tracker_flavor.runs.state import RunState


@dataclass(frozen=True)
class StepRun:
    """What the tracker knows about one step attempt between its hooks."""

    connection: "Connection"
    parent: Parent
    run_id: str
    nested: bool
    autolog: bool
    artifact_uri: str | None = None
    """Where the step's own run keeps its artifacts, as its creation answered (nested runs)."""

    @property
    def key(self) -> tuple[str, str]:
        """Return the key of the step's parent among the parent statuses of the process."""
        return self.connection.uri, self.parent.run_id

    def metadata(self) -> dict[str, "MetadataType"]:
        """Return the step's run link and ids, recorded as ZenML step metadata."""
        return metadata.step_metadata(self.connection, self.parent, self.run_id)


class _Locked:
    """An MlflowClient whose every call holds the autolog lock shared (mlflow/autologging.py)."""

    def __init__(self, client: "MlflowClient", lock: ReadersWriterLock) -> None:
        self._client = client
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if not callable(found):
            return found

        @functools.wraps(found)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock.shared():
                return found(*args, **kwargs)

        return locked


@contextmanager
def client(
    connection: "Connection", process: "MlflowProcess", config: "MLflowPlusConfig | None" = None
) -> Iterator["MlflowClient"]:
    """Yield a client of the connection's store; explain its failures in one line.

    Creating the client and each of its calls hold the autolog lock: they import lazily, which
    would deadlock with a step turning autologging on. Only they do: a step waiting between
    calls (for another process's creation lock) holds up neither other steps nor autologging.
    """
    from mlflow import MlflowClient

    lock = process.autologging.lock
    with explained(connection, process.noise, config):
        with lock.shared():
            created = MlflowClient(tracking_uri=connection.uri)
        yield cast("MlflowClient", _Locked(created, lock))


def resolve_parent(
    mlflow: "MlflowClient",
    connection: "Connection",
    spec: parents.ParentSpec,
    parent_records: "ParentRecords",
    state: "RunState",
) -> Parent:
    """Return the ZenML run's parent run, reopened if the run runs again after it ended."""
    parent = parents.resolve(mlflow, connection, spec, parent_records, state)
    state.statuses.reopen(mlflow, (connection.uri, parent.run_id), parent.status)
    return parent


def start(
    mlflow: "MlflowClient",
    connection: "Connection",
    plan: "StepPlan",
    parent_records: "ParentRecords",
    state: "RunState",
) -> StepRun:
    """Open the step's runs and push the one it logs into on the thread's active-run stack."""
    from mlflow.exceptions import MlflowException

    parent = resolve_parent(mlflow, connection, plan.parent, parent_records, state)
    try:
        _log_on_parent(mlflow, connection, plan, parent, state)
    except MlflowException as error:
        if not mlflow_runs.is_gone(error):
            raise
        parent = parents.replace(mlflow, connection, plan.parent, parent, parent_records, state)
        _log_on_parent(mlflow, connection, plan, parent, state)
    if plan.nested:
        run = mlflow_runs.create_step_run(mlflow, parent, plan.step_name, plan.step_tags)
        mlflow_runs.log(mlflow, run.info.run_id, {}, plan.child_params)
    else:
        run = parent.active_run()
    state.mlflow.seam.push_active_run(run)
    state.mlflow.threads.begin(run, plan.metric_step, plan.step_name)
    artifact_uri = run.info.artifact_uri if plan.nested else None
    return StepRun(connection, parent, run.info.run_id, plan.nested, plan.autolog, artifact_uri)


def _log_on_parent(
    mlflow: "MlflowClient",
    connection: "Connection",
    plan: "StepPlan",
    parent: Parent,
    state: "RunState",
) -> None:
    """Log the step's tags and params on the parent, with the pipeline's params once a process."""
    key = (connection.uri, parent.run_id)
    first = bool(plan.parent.params) and state.pipeline_params.put_new(key, True)
    params = {**plan.parent.params, **plan.parent_params} if first else plan.parent_params
    try:
        mlflow_runs.log(mlflow, parent.run_id, plan.parent_tags, params)
    except BaseException:
        if first:
            state.pipeline_params.pop(key)  # the next step of the process sends them
        raise


def end(mlflow: "MlflowClient", step: StepRun, failed: bool, state: "RunState") -> None:
    """End the step's run and every run its code (in any thread) left open, with its status."""
    status = "FAILED" if failed else "FINISHED"
    left_open = state.mlflow.threads.end() + state.mlflow.seam.pop_active_runs(step.run_id)
    for run_id in reversed(left_open):
        mlflow.set_terminated(run_id, status)
    if step.nested:
        mlflow.set_terminated(step.run_id, status)


def settle_after_step(
    connection: "Connection",
    step: StepRun,
    step_name: str,
    final: ExecutionStatus,
    state: "RunState",
) -> None:
    """Fail the runs of a step that ZenML failed after its cleanup (saving its outputs)."""
    if final.is_successful:
        return
    with explained(connection, state.mlflow.noise):
        settler = rest.settler(connection)
        if step.nested:
            settler.set_terminated(step.run_id, "FAILED")
        if final != ExecutionStatus.RETRIED:  # else a later attempt decides
            state.statuses.settle(settler, step.key, "FAILED", step_name)


def settle_after_run(
    connection: "Connection", step: StepRun, run_id: UUID, final: ExecutionStatus, state: "RunState"
) -> None:
    """Settle the parent after ZenML finished the pipeline run (see watcher/watcher.py)."""
    failed = None
    if not final.is_successful:
        failed = first_failed_step(run_id)
    with explained(connection, state.mlflow.noise):
        status: FinalStatus = "FINISHED" if final.is_successful else "FAILED"
        state.statuses.settle(rest.settler(connection), step.key, status, failed)
