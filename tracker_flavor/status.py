"""Work out the MLflow parent run's status from what ZenML recorded about the pipeline run."""

from typing import TYPE_CHECKING, Literal
from uuid import UUID

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse

Outcome = Literal["RUNNING", "FINISHED", "FAILED"]


def pipeline_outcome(
    run_id: UUID,
    snapshot: "PipelineSnapshotResponse",
    current_step: str,
    current_failed: bool,
) -> tuple[Outcome, str | None]:
    """Return the parent run's status once `current_step` has ended, and the failed step if any.

    A static pipeline is over when every step of its snapshot has a finished latest attempt
    (the current step counts as finished). A dynamic pipeline's steps are not known up front,
    so its parent stays RUNNING until a step fails or the run is reconciled afterwards.
    """
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import StepRunFilter

    spec = snapshot.pipeline_spec
    if not current_failed and spec and any(current_step in s.upstream_steps for s in spec.steps):
        # Steps after this one have not run yet, and a failed step settles the parent itself.
        return "RUNNING", None
    store = Client().zen_store
    latest: dict[str, ExecutionStatus] = {}
    versions: dict[str, int] = {}
    page_number = 1
    while True:
        page = store.list_run_steps(
            StepRunFilter(pipeline_run_id=run_id, exclude_retried=True, page=page_number, size=500)
        )
        for step in page.items:
            # A step launched again (a restarted pod) has a newer attempt: that one counts.
            if step.version >= versions.get(step.name, 0):
                latest[step.name], versions[step.name] = step.status, step.version
        if page_number >= page.total_pages:
            break
        page_number += 1
    latest[current_step] = ExecutionStatus.FAILED if current_failed else ExecutionStatus.COMPLETED

    failed = sorted(name for name, status in latest.items() if status == ExecutionStatus.FAILED)
    if failed:
        return "FAILED", current_step if current_failed else failed[0]
    if snapshot.is_dynamic:
        return "RUNNING", None
    # A step process loads a snapshot filtered to its own step; the spec still lists them all.
    expected = {s.invocation_id for s in spec.steps} if spec else set(snapshot.step_configurations)
    if expected <= set(latest) and all(latest[name].is_finished for name in expected):
        return "FINISHED", None
    return "RUNNING", None


def failed_step(pipeline_run: "PipelineRunResponse") -> str | None:
    """Return the first (by name) failed step of a ZenML run, as the tracker tags it."""
    failed = sorted(name for name, step in pipeline_run.steps.items() if step.status == "failed")
    return failed[0] if failed else None
