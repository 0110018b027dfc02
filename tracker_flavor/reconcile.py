"""Give MLflow runs the final status ZenML recorded, for runs whose process died before it could.

A step closes its runs itself, and a watcher settles them when ZenML has the final word (see
finalizer.py); a process killed on the way leaves runs RUNNING, or FINISHED for a step that failed
afterwards. Reconciling sets the parent run, and every step's child run, to ZenML's status.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from tracker_flavor import runs, tags
from tracker_flavor.status import failed_step
from tracker_flavor.tracker import EXPERIMENT_ID_KEY, PARENT_RUN_ID_KEY

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunResponse

FinalStatus = Literal["FINISHED", "FAILED"]


@dataclass(frozen=True)
class Repair:
    """One MLflow run whose status was changed to match ZenML."""

    run_id: str
    name: str
    before: str
    after: FinalStatus


def final_status(status: "ExecutionStatus") -> FinalStatus | None:
    """Return the MLflow status of a finished ZenML run or step, None while it is not over."""
    if not status.is_finished:
        return None
    return "FINISHED" if status.is_successful else "FAILED"


def parent_run_id(pipeline_run: "PipelineRunResponse", client: "MlflowClient") -> str | None:
    """Return the MLflow parent run of a ZenML run: the recorded id, else the tag search."""
    metadata = pipeline_run.run_metadata
    if isinstance(recorded := metadata.get(PARENT_RUN_ID_KEY), str):
        return recorded
    exp_id = metadata.get(EXPERIMENT_ID_KEY)
    if not isinstance(exp_id, str):
        return None
    found = runs.find_parent_runs(client, exp_id, str(pipeline_run.id))
    return found[0].info.run_id if found else None


def reconcile_run(pipeline_run: "PipelineRunResponse", client: "MlflowClient") -> list[Repair]:
    """Set the MLflow runs of a finished ZenML run to ZenML's statuses; return what changed."""
    from zenml.client import Client

    outcome = final_status(pipeline_run.status)
    parent_id = parent_run_id(pipeline_run, client)
    if outcome is None or parent_id is None:
        return []
    parent = client.get_run(parent_id)
    repairs = []
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`{runs.MLFLOW_PARENT_RUN_ID}` = '{parent_id}'",
        max_results=1000,
    )
    store = Client().zen_store
    for child in children:
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
    failed = failed_step(pipeline_run) if outcome == "FAILED" else None
    if failed and parent.data.tags.get(tags.FAILED_STEP) != failed:
        client.set_tag(parent_id, tags.FAILED_STEP, failed)
    if parent.info.status != outcome:
        client.set_terminated(parent_id, outcome)
        repairs.append(Repair(parent_id, parent.info.run_name, parent.info.status, outcome))
    return repairs
