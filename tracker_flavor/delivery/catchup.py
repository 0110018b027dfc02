"""Deliver spooled values once the tracking server answers again: each value exactly once.

Runs are found, never created twice: the parent through runs/parent.py (its `zenml.pipeline_run_id`
tag, under the cross-process creation lock), a step's run by its `zenml.step_run_id` tag. Params
and tags are idempotent (same value, latest value), and so are ends and statuses. Metrics are
not: MLflow stores every point it is sent, so a metric batch is acknowledged in the journal
right after the server confirmed it. A delivery interrupted at any point (SIGKILL included)
leaves at most one batch per step sent but unacknowledged: the first unacknowledged one. That
batch, and any the step itself sent without an answer, is checked against the run's metric
history first and only the points the server lacks, by (key, value, timestamp, step), are sent.
"""

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from zenml.logger import get_logger

from tracker_flavor.delivery.spool import Journal, Operation, Summary, points, step_journals
from tracker_flavor.mlflow.batch_limits import MAX_VALUES, batches
from tracker_flavor.runs import metadata, mlflow_runs, tags
from tracker_flavor.runs import parent as parents
from tracker_flavor.runs.outcome import settle_parent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.runs.state import RunState

logger = get_logger(__name__)

Progress = Callable[[int], None]


class SpoolError(RuntimeError):
    """A spool cannot be delivered with this tracker (another tracking server)."""


def deliver_run(
    client: "MlflowClient",
    connection: "Connection",
    root: str,
    pipeline_run_id: str,
    component_id: UUID,
    state: "RunState",
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> Summary:
    """Deliver every step journal of a pipeline run in the order written; remove each after."""
    summary = Summary(runs=1)
    # Held across the delivery: within the process, a spool is replayed by one thread at a time.
    with state.locks.hold(("spool", pipeline_run_id)):
        for journal in step_journals(root, pipeline_run_id):
            operations = list(journal.operations())
            summary.steps += 1
            summary.bytes += journal.size()
            summary.points += sum(points(operation) for _, operation in operations)
            if not dry_run:
                _deliver_step(
                    client, connection, journal, operations, component_id, state, progress
                )
    return summary


def deliver_pending(
    client: "MlflowClient",
    connection: "Connection",
    root: str,
    pipeline_run_id: str,
    component_id: UUID,
    state: "RunState",
) -> None:
    """Deliver the pipeline run's spool, if it has one (a step or the watcher catching up)."""
    if step_journals(root, pipeline_run_id):  # one listing: a step's only cost without spool
        summary = deliver_run(client, connection, root, pipeline_run_id, component_id, state)
        logger.info(
            "Delivered %d spooled MLflow values of %d step(s) of ZenML run %s.",
            summary.points,
            summary.steps,
            pipeline_run_id,
        )


def _deliver_step(
    client: "MlflowClient",
    connection: "Connection",
    journal: Journal,
    operations: list[tuple[str, Operation]],
    component_id: UUID,
    state: "RunState",
    progress: Progress | None,
) -> None:
    """Replay one step's journal; acknowledge each metric batch once the server confirmed it."""
    from mlflow.entities import Metric

    zenml_records = metadata.ZenMLRecords(connection, component_id)
    ids: dict[str, str] = {}
    found: dict[str, mlflow_runs.Parent] = {}
    step_run: tuple[mlflow_runs.Parent, str] | None = None
    acknowledged = journal.acknowledged()
    check_next = True  # an interrupted delivery may have sent the first unacknowledged batch
    for key, operation in operations:
        kind = operation["op"]
        written = str(operation.get("run_id", ""))
        target = ids.get(written, written)
        if kind == "run":
            if operation["uri"] != connection.shown:
                raise SpoolError(
                    f"the spool {journal.path} was written for the tracking server "
                    f"{operation['uri']}, not {connection.shown}: sync it with a stack whose "
                    "tracker uses that server."
                )
            run = _run(client, connection, operation, found, zenml_records, state)
            ids[operation["placeholder"]] = run.run_id
            found[operation["placeholder"]] = run
            if operation["kind"] == "step" or step_run is None:
                step_run = (found[operation["parent"] or operation["placeholder"]], run.run_id)
        elif kind == "log":
            first = f"{key}.0"
            if (operation["tags"] or operation["params"]) and first not in acknowledged:
                mlflow_runs.log(client, target, operation["tags"], operation["params"])
                journal.acknowledge(first)
            sent = len(operation["params"]) + len(operation["tags"])
            metrics = [Metric(k, v, t, s) for k, v, t, s in operation["metrics"]]
            for number, batch in enumerate(batches(metrics, MAX_VALUES), start=1):
                if (batch_key := f"{key}.{number}") in acknowledged:
                    continue
                missing = list(batch)
                if check_next or operation["unconfirmed"]:
                    missing = _missing(client, target, missing)
                check_next = False
                if missing:
                    client.log_batch(target, metrics=missing, synchronous=True)
                journal.acknowledge(batch_key)
                sent += len(batch)
            if progress is not None:
                progress(sent)
        elif kind == "end":
            client.set_terminated(target, operation["status"], operation["end_time"])
        elif kind == "settle":
            settle_parent(
                client, target, operation["status"], operation["failed_step"],
                end_time=operation["end_time"],
            )  # fmt: skip
    if step_run is not None:
        _link_step(connection, journal, *step_run, component_id)
    journal.remove()


def _run(
    client: "MlflowClient",
    connection: "Connection",
    operation: Operation,
    found: dict[str, mlflow_runs.Parent],
    zenml_records: metadata.ZenMLRecords,
    state: "RunState",
) -> mlflow_runs.Parent:
    """Return the run a `run` operation stands for: found by its ZenML tag, else created."""
    if operation["kind"] == "parent":
        spec = parents.ParentSpec(
            pipeline_run_id=operation["pipeline_run_id"],
            experiment_name=operation["experiment"],
            run_name=operation["name"],
            tags=operation["tags"],
            # A `parent_run_id` travels as the parent's tag: its run's experiment is the parent's.
            under=operation["tags"].get(MLFLOW_PARENT_RUN_ID),
            experiment_named=False,
        )
        return parents.resolve(client, connection, spec, zenml_records, state)
    parent = found[operation["parent"]]
    step_run_id = operation["tags"][tags.STEP_RUN_ID]
    existing = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.`{tags.STEP_RUN_ID}` = '{step_run_id}'",
        max_results=1,
    )
    run = (
        existing[0]
        if existing
        else mlflow_runs.create_step_run(
            client, parent, operation["name"], operation["tags"], operation["start_time"]
        )
    )
    return mlflow_runs.Parent.of(run)


def _point(metric: "Metric") -> tuple[str, int, int, Any]:
    value = metric.value
    return metric.key, metric.step, metric.timestamp, "nan" if math.isnan(value) else value


def missing_points(batch: Iterable["Metric"], stored: Iterable["Metric"]) -> list["Metric"]:
    """Return the points of `batch` that `stored` lacks.

    MLflow keeps a point once per (key, step, timestamp, value): one stored stands for all equal
    ones.
    """
    have = {_point(metric) for metric in stored}
    return [metric for metric in batch if _point(metric) not in have]


def _missing(client: "MlflowClient", run_id: str, batch: list["Metric"]) -> list["Metric"]:
    """Return the points of a batch the run's metric history does not hold yet."""
    keys = {metric.key for metric in batch}
    stored = [point for key in keys for point in client.get_metric_history(run_id, key)]
    return missing_points(batch, stored)


def _link_step(
    connection: "Connection",
    journal: Journal,
    parent: mlflow_runs.Parent,
    run_id: str,
    component_id: UUID,
) -> None:
    """Add the delivered run's link to the ZenML step run (its metadata named the spool)."""
    step_run_id = journal.path.rstrip("/").rsplit("/", 1)[-1]
    metadata.record_step(
        component_id, UUID(step_run_id), metadata.step_metadata(connection, parent, run_id)
    )
