"""Give MLflow runs the final status ZenML recorded, for runs whose process died before it could.

A step closes its runs itself, and the watcher settles them when ZenML has the final word (see
watcher/watcher.py); a process killed on the way leaves runs RUNNING, or FINISHED for a step that
failed afterwards. Reconciling sets the parent run, and every step's child run, to ZenML's status.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from tracker_flavor.runs import metadata, mlflow_runs, tags
from tracker_flavor.runs.outcome import FinalStatus, final_status, first_failed_step, settle_parent

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.models import PipelineRunResponse
    from zenml.zen_stores.base_zen_store import BaseZenStore


@dataclass(frozen=True)
class Repair:
    """One MLflow run whose status was changed to match ZenML."""

    run_id: str
    name: str
    before: str
    after: FinalStatus


def parent_run_id(pipeline_run: "PipelineRunResponse", client: "MlflowClient") -> str | None:
    """Return the MLflow parent run of a ZenML run: the recorded id, else the tag search."""
    recorded = pipeline_run.run_metadata
    if (record := metadata.read(recorded)) is not None:
        return record.run_id
    exp_id = recorded.get(metadata.EXPERIMENT_ID_KEY)
    if not isinstance(exp_id, str):
        return None
    found = mlflow_runs.find_parent_runs(client, exp_id, str(pipeline_run.id))
    return found[0].info.run_id if found else None


def reconcile_run(
    pipeline_run: "PipelineRunResponse",
    client: "MlflowClient",
    store: "BaseZenStore | None" = None,
) -> list[Repair]:
    """Set the MLflow runs of a finished ZenML run to ZenML's statuses; return what changed."""
    from zenml.client import Client

    store = store or Client().zen_store
    outcome = final_status(pipeline_run.status)
    parent_id = parent_run_id(pipeline_run, client)
    if outcome is None or parent_id is None:
        return []
    parent = client.get_run(parent_id)
    repairs = []
    for child in mlflow_runs.child_runs(client, parent.info.experiment_id, parent_id):
        step_run_id = child.data.tags.get(tags.STEP_RUN_ID)
        if step_run_id is None:
            continue
        # Left RUNNING by a killed process, or FINISHED by a step that failed after its cleanup.
        status = final_status(store.get_run_step(UUID(step_run_id), hydrate=False).status)
        if status is not None and status != child.info.status:
            client.set_terminated(child.info.run_id, status)
            repairs.append(
                Repair(child.info.run_id, child.info.run_name, child.info.status, status)
            )
    failed = first_failed_step(pipeline_run.id, store) if outcome == "FAILED" else None
    if settle_parent(
        client,
        parent_id,
        outcome,
        failed,
        current=parent.info.status,
        current_failed_step=parent.data.tags.get(tags.FAILED_STEP),
    ):
        repairs.append(Repair(parent_id, parent.info.run_name, parent.info.status, outcome))
    return repairs
