"""Bound what the watcher asks ZenML.

One call per poll for all watched runs and one for all watched steps (100 of each at a time),
and polls that grow further apart the longer a run goes on.
"""

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING
from uuid import UUID

from tracker_flavor.mlflow.batch_limits import batches

if TYPE_CHECKING:
    from zenml.enums import ExecutionStatus
    from zenml.models import StepRunResponse
    from zenml.zen_stores.base_zen_store import BaseZenStore

FIRST_SECONDS = 0.5
LAST_SECONDS = 5.0
GROWTH_SECONDS = 20.0
"""Watching time over which the interval grows from FIRST_SECONDS to LAST_SECONDS."""
PER_CALL = 100


def poll_interval(watching_seconds: float) -> float:
    """Return the wait before the next poll: quick at first (short runs settle fast), then slow."""
    share = min(max(watching_seconds, 0.0) / GROWTH_SECONDS, 1.0)
    return FIRST_SECONDS + share * (LAST_SECONDS - FIRST_SECONDS)


def one_of(ids: list[UUID]) -> str:
    """Return ZenML's filter value that matches any of `ids`."""
    return f"oneof:{json.dumps([str(i) for i in ids])}"


def _chunks(ids: list[UUID]) -> Iterator[list[UUID]]:
    return (list(chunk) for chunk in batches(ids, PER_CALL))


def statuses(
    store: "BaseZenStore", run_ids: list[UUID], step_ids: list[UUID]
) -> dict[UUID, "ExecutionStatus | StepRunResponse"]:
    """Return the status of each watched run, and each watched step run as ZenML lists it.

    A call per 100 runs and one per 100 steps, whatever the number of runs. A run or step
    deleted meanwhile is left out (so it is dropped), never an error that would keep every
    other watched one waiting. A listed step carries its outputs: settling it reads no more.
    """
    from zenml.models import PipelineRunFilter, StepRunFilter

    found: dict[UUID, ExecutionStatus | StepRunResponse] = {}
    for chunk in _chunks(run_ids):
        runs = store.list_runs(PipelineRunFilter(id=one_of(chunk), size=len(chunk)))
        found.update((run.id, run.status) for run in runs.items)
    for chunk in _chunks(step_ids):
        steps = store.list_run_steps(StepRunFilter(id=one_of(chunk), size=len(chunk)))
        found.update((step.id, step) for step in steps.items)
    return found
