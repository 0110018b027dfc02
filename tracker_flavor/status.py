"""What ZenML recorded about a run's steps, read in a bounded number of small queries.

The cost must not grow with the width of the run: no step lists the run's steps. A step with
downstream steps, and any step of a dynamic pipeline, decides without asking ZenML at all (a
dynamic run is settled once, by the watcher in the process that ran its steps). A leaf of a
static pipeline asks ZenML for counts (pages of one item) and, only when steps failed, for at
most `FAILED_PAGE` of them and the newest attempt of each it checks. The rule itself is
settlement.decide.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tracker_flavor.settlement import Counts, Outcome, decide

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse, StepRunResponse

FAILED_PAGE = 20
"""Failed steps a leaf checks for a newer attempt; beyond them the watcher decides."""
SETTLED = ("completed", "cached", "skipped")
"""Statuses of a step whose latest attempt ended well (ZenML's `is_successful`)."""


def failed_step(pipeline_run: "PipelineRunResponse") -> str | None:
    """Return the first (by name) failed step of a ZenML run, as the tracker tags it."""
    failed = sorted(name for name, step in pipeline_run.steps.items() if step.status == "failed")
    return failed[0] if failed else None


def is_leaf(snapshot: "PipelineSnapshotResponse", step_name: str) -> bool:
    """Tell whether no step of a static pipeline runs after `step_name`."""
    spec = snapshot.pipeline_spec
    return not (spec and any(step_name in s.upstream_steps for s in spec.steps))


def expected_steps(snapshot: "PipelineSnapshotResponse") -> int:
    """Return the number of steps of a static pipeline (its spec lists them all)."""
    spec = snapshot.pipeline_spec
    return len(spec.steps) if spec else len(snapshot.step_configurations)


def pipeline_outcome(
    run_id: UUID,
    snapshot: "PipelineSnapshotResponse",
    current_step: str,
    current_failed: bool,
) -> tuple[Outcome, str | None]:
    """Return the parent run's status once `current_step` has ended, and the failed step if any."""
    if current_failed:
        return "FAILED", current_step
    if snapshot.is_dynamic or not is_leaf(snapshot, current_step):
        # Later steps will run, or (dynamic) no step can know it is the last one.
        return "RUNNING", None
    return decide(count_steps(run_id), expected_steps(snapshot))


def step_pages(run_id: UUID) -> Callable[..., Any]:
    """Return a function listing one small page of the latest attempts of a run's steps."""
    from zenml.client import Client
    from zenml.models import StepRunFilter

    store = Client().zen_store

    def page(size: int, sort_by: str = "created", **filters: Any) -> Any:
        return store.list_run_steps(
            StepRunFilter(
                pipeline_run_id=run_id, exclude_retried=True, size=size, sort_by=sort_by, **filters
            )
        )

    return page


def count_steps(run_id: UUID) -> Counts:
    """Ask ZenML how the latest attempts of a run's steps stand, in a few small queries."""
    page = step_pages(run_id)
    settled = page(1, status=_oneof(SETTLED)).total
    failed = page(FAILED_PAGE, sort_by="asc:name", status="failed")
    return Counts(settled=settled, failed=first_still_failed(failed.items, page))


def first_failed_step(run_id: UUID) -> str | None:
    """Return the first (by name) failed step of a finished ZenML run, in one small query."""
    page = step_pages(run_id)
    return first_still_failed(page(FAILED_PAGE, sort_by="asc:name", status="failed").items, page)


def first_still_failed(failed: "list[StepRunResponse]", page: Callable[..., Any]) -> str | None:
    """Return the first failed step whose newest attempt failed too (a relaunch may follow)."""
    for step in failed:
        newest = page(1, sort_by="desc:version", name=step.name).items
        if not newest or newest[0].version <= step.version:
            return step.name
    return None


def _oneof(values: tuple[str, ...]) -> str:
    """Return a ZenML `oneof:` filter value."""
    return f"oneof:{json.dumps(list(values))}"
