"""Deliver spooled values once the tracking server answers again: each value exactly once.

Runs are found, never created twice: the parent through runs/parent.py (its `zenml.pipeline_run_id`
tag, under the cross-process creation lock), a step's run by its `zenml.step_run_id` tag. Params
and tags are idempotent (same value, latest value), and so are ends and statuses. Metrics are
not: MLflow's file store keeps every point it is sent. So one process at a time delivers a
pipeline run's spool (its lease, lease.py), each metric batch is acknowledged in the journal
right after the server confirmed it, and every batch without an acknowledgement (an interrupted
delivery's, a lost acknowledgement file's, one the step sent without an answer) is checked
against the run's metric history first: only the points the server lacks, by (key, value,
timestamp, step), are sent. The history is read once per run and key, then kept up to date
with what this delivery sends.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from zenml.logger import get_logger

from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.delivery.lease import Lease, LeaseLost, path_of
from tracker_flavor.delivery.points import identity
from tracker_flavor.delivery.spool import (
    HELD_PREFIX,
    Journal,
    Operation,
    RunReport,
    Summary,
    points,
    step_journals,
)
from tracker_flavor.mlflow.batch_limits import MAX_VALUES, batches
from tracker_flavor.mlflow.connection import is_down
from tracker_flavor.runs import metadata, mlflow_runs, tags
from tracker_flavor.runs import parent as parents
from tracker_flavor.runs.outcome import settle_parent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from zenml.metadata.metadata_types import MetadataType

    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.runs.state import RunState

logger = get_logger(__name__)

Progress = Callable[[int], None]
Publish = Callable[[str, str, dict[str, "MetadataType"], dict[str, Any]], None]
"""Sends a delivered step's outputs, reports and lineage.

Its arguments: the step run id, its MLflow run id, the run's ZenML metadata, the step's settings.
"""


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
    publish: Publish | None = None,
    held: "Sequence[Journal]" = (),
) -> Summary:
    """Deliver every step journal of a pipeline run in the order written; remove each after.

    A run whose lease another process holds is left to it (the report says who). A step whose
    delivery fails for a reason of its own is reported and kept; the other steps go on. A
    server that is down, or a spool for another server, stops the delivery.
    """
    summary = Summary(runs=1)
    report = RunReport(pipeline_run_id)
    summary.reports.append(report)
    # Within the process one thread at a time; across processes and hosts, the lease.
    with state.locks.hold(("spool", pipeline_run_id)):
        lease = None if dry_run else Lease(path_of(root, pipeline_run_id))
        if lease is not None and (holder := lease.take()) is not None:
            report.busy = holder.describe()
            return summary
        try:
            stored = step_journals(root, pipeline_run_id)
            in_memory = {journal.path: journal for journal in held}
            # A step whose store filled up mid-way: its held operations follow its segments.
            paths = {journal.path for journal in stored}
            for journal in [*stored, *(j for j in held if j.path not in paths)]:
                contents = journal.read(quarantine=not dry_run)
                rest = in_memory.get(journal.path)
                if rest is not None and rest is not journal:
                    contents.operations += rest.read().operations
                spooled = sum(points(operation) for _, operation in contents.operations)
                summary.steps += 1
                summary.bytes += journal.size()
                summary.points += spooled
                report.spooled += spooled
                report.skipped += contents.skipped
                report.quarantined += len(contents.quarantined)
                for damaged in contents.quarantined:
                    logger.warning(
                        "A damaged MLflow spool segment of ZenML run %s, step run %s, was set "
                        "aside in %s (its values are lost): %s",
                        pipeline_run_id, journal.step_run_id, journal.quarantine_path,
                        damaged.reason,
                    )  # fmt: skip
                if dry_run:
                    continue
                step = _StepDelivery(client, connection, journal, component_id, state, lease, rest)
                try:
                    report.delivered += step.deliver(contents.operations, progress, publish)
                except (SpoolError, LeaseLost):
                    raise
                except Exception as error:
                    if is_down(connection):
                        raise
                    report.problems.append(
                        f"step run {journal.step_run_id}: "
                        + redact_credentials(
                            str(error).splitlines()[0] if str(error) else type(error).__name__
                        )
                    )
        finally:
            if lease is not None:
                lease.release()
    return summary


def deliver_pending(
    client: "MlflowClient",
    connection: "Connection",
    root: str,
    pipeline_run_id: str,
    component_id: UUID,
    state: "RunState",
    publish: Publish | None = None,
    held: "Sequence[Journal]" = (),
) -> None:
    """Deliver the pipeline run's spool, if it has one (a step or the watcher catching up)."""
    # One listing: a step's only cost without spool.
    if not held and not step_journals(root, pipeline_run_id):
        return
    summary = deliver_run(
        client, connection, root, pipeline_run_id, component_id, state, publish=publish, held=held
    )
    report = summary.reports[0]
    if report.busy:
        logger.info("Spool of ZenML run %s: %s delivers it.", pipeline_run_id, report.busy)
        return
    for problem in report.problems:
        logger.warning("Spool of ZenML run %s not delivered: %s", pipeline_run_id, problem)
    logger.info(
        "Delivered %d spooled MLflow values of %d step(s) of ZenML run %s.",
        report.delivered,
        summary.steps,
        pipeline_run_id,
    )


class _StepDelivery:
    """Replays one step's journal under the run's lease."""

    def __init__(
        self,
        client: "MlflowClient",
        connection: "Connection",
        journal: Journal,
        component_id: UUID,
        state: "RunState",
        lease: Lease | None,
        held: Journal | None = None,
    ) -> None:
        self.client = client
        self.held = held if held is not journal else None
        self.connection = connection
        self.journal = journal
        self.component_id = component_id
        self.state = state
        self.lease = lease
        self.history: dict[tuple[str, str], set[tuple[Any, ...]]] = {}

    def deliver(
        self,
        operations: list[tuple[str, Operation]],
        progress: Progress | None,
        publish: Publish | None,
    ) -> int:
        """Replay the journal; acknowledge each metric batch once confirmed; return values sent."""
        from mlflow.entities import Metric

        client, journal = self.client, self.journal
        zenml_records = metadata.ZenMLRecords(self.connection, self.component_id)
        ids: dict[str, str] = {}
        found: dict[str, mlflow_runs.Parent] = {}
        step_run: tuple[mlflow_runs.Parent, str] | None = None
        acknowledged = journal.acknowledged() | (self.held.acknowledged() if self.held else set())
        publishing: dict[str, Any] | None = None
        first_target: str | None = None
        delivered = 0
        for key, operation in operations:
            kind = operation["op"]
            written = str(operation.get("run_id", ""))
            target = ids.get(written, written)
            if kind == "run":
                if operation["uri"] != self.connection.shown:
                    raise SpoolError(
                        f"the spool {journal.path} was written for the tracking server "
                        f"{operation['uri']}, not {self.connection.shown}: sync it with a stack "
                        "whose tracker uses that server."
                    )
                run = _run(client, self.connection, operation, found, zenml_records, self.state)
                ids[operation["placeholder"]] = run.run_id
                found[operation["placeholder"]] = run
                if operation["kind"] == "step" or step_run is None:
                    step_run = (found[operation["parent"] or operation["placeholder"]], run.run_id)
            elif kind == "log":
                first_target = first_target or target
                first = f"{key}.0"
                if (operation["tags"] or operation["params"]) and first not in acknowledged:
                    mlflow_runs.log(client, target, operation["tags"], operation["params"])
                    self._acknowledge(first)
                sent = len(operation["params"]) + len(operation["tags"])
                metrics = [Metric(k, v, t, s) for k, v, t, s in operation["metrics"]]
                for number, batch in enumerate(batches(metrics, MAX_VALUES), start=1):
                    if (batch_key := f"{key}.{number}") in acknowledged:
                        continue
                    if self.lease is not None:
                        self.lease.check()
                    if missing := self._missing(target, batch):
                        client.log_batch(target, metrics=missing, synchronous=True)
                        self._stored(target, missing)
                    self._acknowledge(batch_key)
                    sent += len(batch)
                delivered += sent
                if progress is not None:
                    progress(sent)
            elif kind == "end":
                client.set_terminated(target, operation["status"], operation["end_time"])
            elif kind == "settle":
                settle_parent(
                    client, target, operation["status"], operation["failed_step"],
                    end_time=operation["end_time"],
                )  # fmt: skip
            elif kind == "publish":
                publishing = operation["settings"]
        # A step that started online journaled no run: its values name its run, and its links
        # were recorded when it started.
        links: dict[str, MetadataType] = {}
        if step_run is not None:
            links = metadata.step_metadata(self.connection, *step_run)
        run_id = step_run[1] if step_run is not None else first_target
        metadata.record_step(
            self.component_id,
            UUID(journal.step_run_id),
            {**links, **metadata.spool_delivered(delivered)},
        )
        if publish is not None and publishing is not None and run_id is not None:
            publish(journal.step_run_id, run_id, links, publishing)
        journal.remove()
        if self.held is not None:
            self.held.remove()
        return delivered

    def _acknowledge(self, key: str) -> None:
        """Record a confirmed batch where its operation is kept (the store, or memory)."""
        if self.held is not None and key.startswith(HELD_PREFIX):
            self.held.acknowledge(key)
        else:
            self.journal.acknowledge(key)

    def _missing(self, run_id: str, batch: Sequence["Metric"]) -> list["Metric"]:
        """Return the points of a batch the run's metric history does not hold yet."""
        for key in {metric.key for metric in batch}:
            if (run_id, key) not in self.history:
                stored = self.client.get_metric_history(run_id, key)
                self.history[(run_id, key)] = {identity(point) for point in stored}
        return [m for m in batch if identity(m) not in self.history[(run_id, m.key)]]

    def _stored(self, run_id: str, sent: list["Metric"]) -> None:
        """Add what the server confirmed to the known history."""
        for metric in sent:
            self.history[(run_id, metric.key)].add(identity(metric))


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
