"""Bound what the watcher asks ZenML.

One call per poll for each watched run and per 100 watched steps, and polls that grow further
apart the longer a run goes on.
"""

import json
from typing import TYPE_CHECKING
from uuid import UUID

from tracker_flavor.mlflow.batch_limits import batches

if TYPE_CHECKING:
    from zenml.enums import ExecutionStatus
    from zenml.zen_stores.base_zen_store import BaseZenStore

FIRST_SECONDS = 0.5
LAST_SECONDS = 5.0
GROWTH_SECONDS = 20.0
"""Watching time over which the interval grows from FIRST_SECONDS to LAST_SECONDS."""
STEPS_PER_CALL = 100


def poll_interval(watching_seconds: float) -> float:
    """Return the wait before the next poll: quick at first (short runs settle fast), then slow."""
    share = min(max(watching_seconds, 0.0) / GROWTH_SECONDS, 1.0)
    return FIRST_SECONDS + share * (LAST_SECONDS - FIRST_SECONDS)


def statuses(
    store: "BaseZenStore", run_ids: list[UUID], step_ids: list[UUID]
) -> dict[UUID, "ExecutionStatus"]:
    """Return the status of each watched run and step run that still exists.

    A call per run, one per 100 steps. A run deleted meanwhile is left out (so it is dropped),
    never an error that would keep every other watched run waiting.
    """
    from zenml.models import StepRunFilter

    found = {}
    for run_id in run_ids:
        try:
            found[run_id] = store.get_run(run_id, hydrate=False).status
        except KeyError:  # ZenML's "not found", from its SQL store and over REST alike
            continue
    for chunk in batches(step_ids, STEPS_PER_CALL):
        page = store.list_run_steps(
            StepRunFilter(id=f"oneof:{json.dumps([str(i) for i in chunk])}", size=len(chunk))
        )
        found.update((step.id, step.status) for step in page.items)
    return found
