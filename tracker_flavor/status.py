"""Read a finished ZenML run's failed step, as the tracker tags it (see outcome.py for steps)."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse


def failed_step(pipeline_run: "PipelineRunResponse") -> str | None:
    """Return the first (by name) failed step of a ZenML run, as the tracker tags it."""
    failed = sorted(name for name, step in pipeline_run.steps.items() if step.status == "failed")
    return failed[0] if failed else None
