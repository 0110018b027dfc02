"""A step whose tracking server may be down (`on_tracking_outage: spool`): go on, journal the rest.

A server that does not accept a connection within `connect_timeout_seconds` is down. A step
that finds it down when it starts opens placeholder runs (ids that only the spool knows) and
journals what it would have created: the parent with its tags, in nested mode its child run,
the step's tags and params. What the step's code logs goes through the batching queue as usual;
whatever it could not deliver by the step's end (at once for a step that started offline, after
`outage_grace_seconds` otherwise) is journaled, and so are the ends and statuses the step could
not write. catchup.py delivers it all later: a later step before it starts, the watcher once the
pipeline run is over, or `zenml-mlflow sync`.
"""

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zenml.logger import get_logger

from tracker_flavor.delivery import catchup, spool
from tracker_flavor.mlflow.connection import connect, is_down
from tracker_flavor.mlflow.errors import TrackingServerError
from tracker_flavor.runs import metadata, steps
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.outcome import pipeline_outcome, snapshot_in_order
from tracker_flavor.runs.steps import StepRun

if TYPE_CHECKING:
    from zenml.config.step_run_info import StepRunInfo
    from zenml.enums import ExecutionStatus
    from zenml.metadata.metadata_types import MetadataType

    from tracker_flavor.config.component import MLflowPlusConfig
    from tracker_flavor.delivery.ledger import Chunk
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.mlflow.internals import Internals
    from tracker_flavor.runs.outcome import Outcome
    from tracker_flavor.runs.plan import StepPlan
    from tracker_flavor.runs.state import RunState

logger = get_logger(__name__)

PLACEHOLDER_EXPERIMENT = "0"
"""Experiment id of placeholder runs: MLflow's default experiment, never written to."""
HELD_VALUES_LIMIT = 200_000
"""Values a process keeps in memory when the artifact store cannot take its spool (~60 MB)."""


class HeldSpools:
    """What steps of this process could not write to the spool, kept in memory, bounded.

    A later append, a later step's catch-up and the watcher at the run's end write it to the
    store or deliver it to the server, whichever works first; beyond `limit` values, the rest
    is counted as lost.
    """

    def __init__(self, limit: int = HELD_VALUES_LIMIT) -> None:
        self.limit = limit
        self.values = 0
        self._journals: dict[str, list[spool.HeldJournal]] = {}
        self._lock = threading.Lock()

    def hold(self, pipeline_run_id: str, path: str, operations: list[spool.Operation]) -> int:
        """Keep what fits of `operations` for a step's journal; return how many values did not."""
        lost = 0
        kept = []
        with self._lock:
            for operation in operations:
                size = spool.points(operation)
                if self.values + size > self.limit:
                    lost += size
                    continue
                self.values += size
                kept.append(operation)
            journals = self._journals.setdefault(pipeline_run_id, [])
            same = [j for j in journals if j.path == path]
            journal = same[0] if same else spool.HeldJournal(path)
            if not same:
                journals.append(journal)
            journal.held.extend(kept)
        return lost

    def of(self, pipeline_run_id: str) -> list[spool.HeldJournal]:
        """Return the held journals of a pipeline run (those delivered or written are dropped)."""
        with self._lock:
            journals = [j for j in self._journals.get(pipeline_run_id, []) if j.held]
            self.values = sum(
                spool.points(op) for js in self._journals.values() for j in js for op in j.held
            )
            if journals:
                self._journals[pipeline_run_id] = journals
            else:
                self._journals.pop(pipeline_run_id, None)
            return journals

    def write_out(self, pipeline_run_id: str) -> None:
        """Write a run's held journals to the artifact store, if it takes them now."""
        for journal in self.of(pipeline_run_id):
            try:
                spool.Journal(journal.path).append(list(journal.held))
            except OSError:
                return
            journal.remove()


def sync_command(pipeline_run_id: str) -> str:
    """Return the command that delivers a pipeline run's spool by hand."""
    return f"zenml-mlflow sync --run {pipeline_run_id}"


@dataclass
class StepSpool:
    """One step's journal, and whether the step started without the server."""

    root: str
    """The spool root of the connection's server in the active artifact store."""
    journal: spool.Journal
    pipeline_run_id: str
    held: HeldSpools
    offline: bool = False
    spooled: int = 0
    held_values: int = 0
    lost: int = 0
    error: str | None = None
    """Why the artifact store did not take the spool (a full disk, a read-only store)."""
    publish: dict[str, Any] | None = field(default=None)
    """The settings that ask for outputs, reports or lineage, sent after delivery."""

    @classmethod
    def of(cls, connection: "Connection", info: "StepRunInfo", held: HeldSpools) -> "StepSpool":
        """Return the spool of a step attempt in the artifact store, for the connection's server."""
        root, run_id = spool.active_root(connection.shown), str(info.run_id)
        return cls(root, spool.Journal.of(root, run_id, str(info.step_run_id)), run_id, held)

    def append(self, operations: list[spool.Operation]) -> None:
        """Journal operations; held in memory (bounded) when the artifact store refuses them."""
        if not operations:
            return
        self.held.write_out(self.pipeline_run_id)  # order: what was held goes first
        pending = any(j.path == self.journal.path for j in self.held.of(self.pipeline_run_id))
        if not pending:
            try:
                self.journal.append(operations)
                return
            except OSError as error:
                first = self.error is None
                self.error = f"{type(error).__name__}: {error}"
                if first:
                    logger.warning(
                        "The MLflow spool %s cannot be written (%s): this step's undelivered "
                        "values are kept in memory (up to %d) until the store or the server "
                        "takes them, at the latest when the pipeline run ends.",
                        self.journal.path, self.error, self.held.limit,
                    )  # fmt: skip
        values = sum(spool.points(operation) for operation in operations)
        lost = self.held.hold(self.pipeline_run_id, self.journal.path, operations)
        self.held_values += values - lost
        self.lost += lost

    def final_wait(self, grace_seconds: float) -> float:
        """Return how long the step's end waits for its values: an offline step's spool at once."""
        return 0.0 if self.offline else grace_seconds

    def metadata(self) -> dict[str, "MetadataType"]:
        """Return the step metadata that names the spool and the command that delivers it."""
        named: dict[str, MetadataType] = {
            metadata.SPOOL_KEY: self.journal.path,
            metadata.SPOOL_SYNC_COMMAND_KEY: sync_command(self.pipeline_run_id),
        }
        if self.error is not None:
            named[metadata.SPOOL_ERROR_KEY] = self.error
            named[metadata.VALUES_HELD_KEY] = self.held_values
            named[metadata.VALUES_LOST_KEY] = self.lost
        return named

    def step_metadata(
        self, step: StepRun, delivery: Mapping[str, "MetadataType"]
    ) -> dict[str, "MetadataType"]:
        """Return the step's metadata: its runs' (placeholders: none), the delivery, the spool."""
        if self.offline:
            return {**delivery, **self.metadata(), metadata.VALUES_SPOOLED_KEY: self.spooled}
        named = self.metadata() if self.spooled or self.error else {}
        return {**step.metadata(), **delivery, **named}

    def spool_values(self, left: list["Chunk"]) -> None:
        """Journal the values the batching queue could not deliver."""
        self.append(spool.chunk_operations(left))
        self.spooled += sum(chunk.size for chunk in left)

    def spool_end(
        self,
        step: StepRun,
        failed: bool,
        outcome: "Outcome",
        failed_step: str | None,
        seam: "Internals",
    ) -> None:
        """Journal the step run's end and, when this step decides it, the parent's status."""
        if self.offline:  # no request ends it: take the placeholder off the active-run stack
            seam.pop_active_runs(step.run_id)
        operations = []
        if step.nested:
            operations.append(spool.end_operation(step.run_id, "FAILED" if failed else "FINISHED"))
        if outcome != "RUNNING":
            operations.append(spool.settle_operation(step.parent.run_id, outcome, failed_step))
        if self.publish is not None and not failed:
            operations.append(spool.publish_operation(self.publish))
        self.append(operations)


def start_offline(
    connection: "Connection", plan: "StepPlan", step_spool: StepSpool, seam: "Internals"
) -> StepRun:
    """Journal the step's runs under placeholder ids and make its run the active one."""
    parent = Parent(uuid.uuid4().hex, PLACEHOLDER_EXPERIMENT, plan.parent.run_name)
    operations = [
        spool.run_operation(
            parent.run_id,
            "parent",
            experiment=plan.parent.experiment_name,
            artifact_location=connection.artifact_location,
            name=plan.parent.run_name,
            run_tags=dict(plan.parent.tags),
            uri=connection.shown,
            pipeline_run_id=plan.parent.pipeline_run_id,
        ),
        spool.log_operation(
            parent.run_id,
            params={**plan.parent.params, **plan.parent_params},
            run_tags=dict(plan.parent_tags),
        ),
    ]
    run = parent
    if plan.nested:
        run = Parent(uuid.uuid4().hex, PLACEHOLDER_EXPERIMENT, plan.step_name)
        operations += [
            spool.run_operation(
                run.run_id,
                "step",
                experiment=plan.parent.experiment_name,
                artifact_location=connection.artifact_location,
                name=plan.step_name,
                run_tags=dict(plan.step_tags),
                uri=connection.shown,
                pipeline_run_id=plan.parent.pipeline_run_id,
                parent=parent.run_id,
            ),
            spool.log_operation(run.run_id, params=dict(plan.child_params)),
        ]
    step_spool.append(operations)
    seam.push_active_run(run.active_run())
    return StepRun(connection, parent, run.run_id, plan.nested, plan.autolog)


def start(
    connection: "Connection",
    config: "MLflowPlusConfig",
    component_id: uuid.UUID,
    plan: "StepPlan",
    step_spool: StepSpool | None,
    state: "RunState",
    publish: catchup.Publish | None = None,
) -> StepRun:
    """Open the step's runs, after delivering the run's spool; offline if the server is down."""
    seam = state.mlflow.seam
    if step_spool is not None and is_down(connection):
        step_spool.offline = True
        return start_offline(connection, plan, step_spool, seam)
    try:
        with steps.client(connection, state.mlflow, config) as mlflow:
            if step_spool is not None:
                run_id = step_spool.pipeline_run_id
                step_spool.held.write_out(run_id)
                catchup.deliver_pending(
                    mlflow, connection, step_spool.root, run_id, component_id, state,
                    publish, step_spool.held.of(run_id),
                )  # fmt: skip
            zenml_records = metadata.ZenMLRecords(connection, component_id)
            return steps.start(mlflow, connection, plan, zenml_records, state)
    except TrackingServerError:
        if step_spool is None or not is_down(connection):
            raise
    step_spool.offline = True
    return start_offline(connection, plan, step_spool, seam)


def end(
    info: "StepRunInfo",
    step: StepRun,
    failed: bool,
    step_spool: StepSpool,
    seam: "Internals",
) -> None:
    """Journal the step's end and the parent's status (`after_run` delivers them if it can)."""
    outcome, failed_step = pipeline_outcome(
        info.run_id, info.snapshot, info.pipeline_step_name, failed, snapshot_in_order
    )
    step_spool.spool_end(step, failed, outcome, failed_step, seam)
    run_id = info.run_id
    logger.warning(
        "The MLflow tracking server %s is down: this step's MLflow values are spooled in %s; "
        "a later step delivers them, or run `%s`.",
        step.connection.shown,
        step_spool.journal.path,
        sync_command(str(run_id)),
    )


def after_run(
    config: "MLflowPlusConfig",
    component_id: uuid.UUID,
    step: StepRun,
    offline: bool,
    run_id: uuid.UUID,
    final: "ExecutionStatus",
    state: "RunState",
    held: HeldSpools,
    publish: catchup.Publish | None = None,
) -> None:
    """Once the ZenML run is over: deliver its spool if the server is back, then settle."""
    held.write_out(str(run_id))
    # The secrets of now, not the step's.
    connection = connect(config, state.mlflow.stores, step.connection, state.mlflow.tokens)
    if is_down(connection):
        if held.of(str(run_id)):
            logger.warning(
                "MLflow values of ZenML run %s held in memory are lost: neither the artifact "
                "store nor the tracking server %s takes them.", run_id, connection.shown,
            )  # fmt: skip
        return
    with steps.client(connection, state.mlflow, config) as mlflow:
        root = spool.active_root(connection.shown)
        catchup.deliver_pending(
            mlflow,
            connection,
            root,
            str(run_id),
            component_id,
            state,
            publish,
            held.of(str(run_id)),
        )
    # An offline step's parent is a placeholder: the delivery resolved the real one.
    parent = state.parents.get((connection.uri, str(run_id))) if offline else step.parent
    if parent is not None:
        steps.settle_after_run(connection, replace(step, parent=parent), run_id, final, state)
