"""What ZenML recorded about a pipeline run's steps, read for the parent's outcome."""

from typing import TYPE_CHECKING
from uuid import UUID

from tracker_flavor.settlement import Outcome, first_failed, outcome

if TYPE_CHECKING:
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse


def pipeline_outcome(
    run_id: UUID,
    snapshot: "PipelineSnapshotResponse",
    current_step: str,
    current_failed: bool,
) -> tuple[Outcome, str | None]:
    """Return the parent run's status once `current_step` has ended, and the failed step if any.

    A static pipeline is over when every step of its snapshot has a finished latest attempt
    (the current step counts as finished). A dynamic pipeline's steps are not known up front.
    """
    spec = snapshot.pipeline_spec
    if not current_failed and spec and any(current_step in s.upstream_steps for s in spec.steps):
        # Steps after this one have not run yet, and a failed step settles the parent itself.
        return "RUNNING", None
    latest = latest_statuses(run_id)
    if snapshot.is_dynamic:
        expected = None
    else:
        # A step process loads a snapshot filtered to its own step; the spec still lists them all.
        expected = (
            {s.invocation_id for s in spec.steps} if spec else set(snapshot.step_configurations)
        )
    return outcome(latest, expected, current_step, current_failed)


def latest_statuses(run_id: UUID) -> dict[str, "ExecutionStatus"]:
    """Return the status of the latest attempt of each step of a ZenML run."""
    from zenml.client import Client
    from zenml.models import StepRunFilter

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
    return latest


def failed_step(pipeline_run: "PipelineRunResponse") -> str | None:
    """Return the step a finished ZenML run's parent is tagged with as failed."""
    return first_failed({name: step.status for name, step in pipeline_run.steps.items()})
