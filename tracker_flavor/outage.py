"""A step's side of a tracking outage (`on_tracking_outage: spool`): go on, and journal the rest.

A server that does not accept a connection within `connect_timeout_seconds` is down. A step
that finds it down when it starts opens placeholder runs (ids that only the spool knows) and
journals what it would have created: the parent with its tags, in nested mode its child run,
the step's tags and params. What the step's code logs goes through the batching queue as usual;
whatever it could not deliver by the step's end (at once for a step that started offline, after
`outage_grace_seconds` otherwise) is journaled, and so are the ends and statuses the step could
not write. catchup.py delivers it all later.
"""

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracker_flavor import active_run, spool
from tracker_flavor.runs import Parent
from tracker_flavor.steps import StepRun
from tracker_flavor.timeouts import accepts_connections

if TYPE_CHECKING:
    from zenml.metadata.metadata_types import MetadataType

    from tracker_flavor.batching import Chunk
    from tracker_flavor.connection import Connection
    from tracker_flavor.plan import StepPlan
    from tracker_flavor.settlement import Outcome

SPOOL_KEY = "mlflow_spool"
SYNC_COMMAND_KEY = "mlflow_spool_sync_command"
PLACEHOLDER_EXPERIMENT = "0"
"""Experiment id of placeholder runs: MLflow's default experiment, never written to."""


def is_down(connection: "Connection") -> bool:
    """Tell whether the connection's server is down: it does not accept a connection in time."""
    if connection.kind not in ("http", "databricks"):
        return False  # a database or file store fails in its own ways, never "down"
    return not accepts_connections(connection.server, connection.limits.connect_seconds)


def sync_command(pipeline_run_id: str) -> str:
    """Return the command that delivers a pipeline run's spool by hand."""
    return f"zenml-mlflow sync --run {pipeline_run_id}"


@dataclass
class StepSpool:
    """One step's journal, and whether the step started without the server."""

    journal: spool.Journal
    pipeline_run_id: str
    offline: bool = False
    spooled: int = 0

    def metadata(self) -> dict[str, "MetadataType"]:
        """Return the step metadata that names the spool and the command that delivers it."""
        return {SPOOL_KEY: self.journal.path, SYNC_COMMAND_KEY: sync_command(self.pipeline_run_id)}

    def spool_values(self, left: list["Chunk"]) -> None:
        """Journal the values the batching queue could not deliver."""
        self.journal.append(spool.chunk_operations(left))
        self.spooled += sum(chunk.size for chunk in left)

    def spool_end(
        self, step: StepRun, failed: bool, outcome: "Outcome", failed_step: str | None
    ) -> None:
        """Journal the step run's end and, when this step decides it, the parent's status."""
        if self.offline:  # no request ends it: take the placeholder off the active-run stack
            active_run.pop_until(step.run_id)
        operations = []
        if step.nested:
            operations.append(spool.end_operation(step.run_id, "FAILED" if failed else "FINISHED"))
        if outcome != "RUNNING":
            operations.append(spool.settle_operation(step.parent.run_id, outcome, failed_step))
        self.journal.append(operations)


def start_offline(connection: "Connection", plan: "StepPlan", journal: spool.Journal) -> StepRun:
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
            parent.run_id, params=dict(plan.parent_params), run_tags=dict(plan.parent_tags)
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
    journal.append(operations)
    active_run.push(run.active_run())
    return StepRun(connection, parent, run.run_id, plan.nested, plan.autolog)
