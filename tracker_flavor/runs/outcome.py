"""The parent run's status: the outcome rule, the failed-step rule, and the one status writer.

It also holds what ZenML recorded about the run's steps and the one ZenML-to-MLflow status map.

The hooks, the watcher, the spool's catch-up and `zenml-mlflow runs --repair` all settle a parent
through `settle_parent`; the hooks and the watcher share one `ParentStatuses`, so a status is
written once per process even when step threads and the watcher's thread settle at once.

What ZenML is asked costs the same whatever the width of the run: no step lists the run's steps.
A step with downstream steps, and any step of a dynamic pipeline, decides without asking ZenML
at all (a dynamic run is settled once, by the watcher in the process that ran its steps), and so
does a leaf its orchestrator launches before other steps (the local orchestrator launches a
static pipeline's steps one at a time, in the snapshot's order). Any other leaf of a static
pipeline asks ZenML for one count (a page of one item). The watcher and the repair
ask for at most `FAILED_PAGE` failed steps and the newest attempt of each they check.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.concurrency.locks import KeyLocks
from tracker_flavor.runs import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineSnapshotResponse, StepRunResponse
    from zenml.stack import Stack
    from zenml.zen_stores.base_zen_store import BaseZenStore

    from tracker_flavor.mlflow.rest import RunSettler

Outcome = Literal["RUNNING", "FINISHED", "FAILED"]
FinalStatus = Literal["FINISHED", "FAILED"]

KNOWN_STATUSES = 4096
"""Parent statuses a process remembers writing (bounded for long-lived processes)."""
FAILED_PAGE = 20
"""Failed steps checked for a newer attempt when naming the one that failed a finished run."""
SETTLED = ("completed", "cached", "skipped")
"""Statuses of a step whose latest attempt ended well (ZenML's `is_successful`)."""
IN_ORDER = frozenset({"local"})
"""Orchestrator flavors that launch a static pipeline's steps one at a time, in snapshot order."""


def final_status(status: "ExecutionStatus") -> FinalStatus | None:
    """Return the MLflow status of a finished ZenML run or step, None while it is not over."""
    if not status.is_finished:
        return None
    return "FINISHED" if status.is_successful else "FAILED"


def decide(settled: int, expected: int) -> Outcome:
    """Return the outcome once a leaf step ended well, from the count of other settled steps.

    A step that failed fails the parent itself (its own hook, else the watcher at the run's
    end), so a leaf looks only for the one outcome it can tell: that it was the last step.
    """
    return "FINISHED" if settled + 1 >= expected else "RUNNING"  # + 1: the current step


def is_leaf(snapshot: "PipelineSnapshotResponse", step_name: str) -> bool:
    """Tell whether no step of a static pipeline runs after `step_name`."""
    spec = snapshot.pipeline_spec
    return not (spec and any(step_name in s.upstream_steps for s in spec.steps))


def launched_last(snapshot: "PipelineSnapshotResponse", step_name: str) -> bool:
    """Tell whether `step_name` comes last in the snapshot's order of steps."""
    return next(reversed(snapshot.step_configurations), None) == step_name


def launched_before_another(
    snapshot: "PipelineSnapshotResponse",
    step_name: str,
    in_order: Callable[["PipelineSnapshotResponse"], bool],
) -> bool:
    """Tell whether the run's orchestrator launches another step once `step_name` has ended."""
    return (
        not snapshot.is_dynamic
        and not launched_last(snapshot, step_name)
        and in_order(snapshot)  # asked last: it may read the stack
    )


def launches_in_order(stack: "Stack") -> bool:
    """Tell whether the stack's orchestrator launches steps one at a time, in snapshot order."""
    return stack.orchestrator.flavor in IN_ORDER


def snapshot_in_order(snapshot: "PipelineSnapshotResponse") -> bool:
    """Tell whether the snapshot's orchestrator launches its steps in order (no ZenML call).

    ZenML's step launcher built the snapshot's stack in this process, and ZenML keeps it by the
    stack's id and update time.
    """
    from zenml.stack import Stack

    return snapshot.stack is not None and launches_in_order(Stack.from_model(snapshot.stack))


def expected_steps(snapshot: "PipelineSnapshotResponse") -> int:
    """Return the number of steps of a static pipeline (its spec lists them all)."""
    spec = snapshot.pipeline_spec
    return len(spec.steps) if spec else len(snapshot.step_configurations)


def pipeline_outcome(
    run_id: UUID,
    snapshot: "PipelineSnapshotResponse",
    current_step: str,
    current_failed: bool,
    in_order: Callable[["PipelineSnapshotResponse"], bool],
) -> tuple[Outcome, str | None]:
    """Return the parent run's status once `current_step` has ended, and the failed step if any.

    `in_order` tells whether the run's orchestrator launches its steps one at a time, in the
    snapshot's order; it is asked only of a leaf that is not the last in that order.
    """
    if current_failed:
        return "FAILED", current_step
    if (
        snapshot.is_dynamic
        or not is_leaf(snapshot, current_step)
        or launched_before_another(snapshot, current_step, in_order)
    ):
        # Later steps will run, or (dynamic) no step can know it is the last one.
        return "RUNNING", None
    return decide(settled_steps(run_id), expected_steps(snapshot)), None


def step_pages(run_id: UUID, store: "BaseZenStore | None" = None) -> Callable[..., Any]:
    """Return a function listing one small page of the latest attempts of a run's steps."""
    from zenml.client import Client
    from zenml.models import StepRunFilter

    store = store or Client().zen_store

    def page(size: int, sort_by: str = "created", **filters: Any) -> Any:
        return store.list_run_steps(
            StepRunFilter(
                pipeline_run_id=run_id, exclude_retried=True, size=size, sort_by=sort_by, **filters
            )
        )

    return page


def settled_steps(run_id: UUID) -> int:
    """Ask ZenML how many of a run's steps ended well in their latest attempt (one small page)."""
    return int(step_pages(run_id)(1, status=_oneof(SETTLED)).total)


def first_failed_step(run_id: UUID, store: "BaseZenStore | None" = None) -> str | None:
    """Return the first (by name) failed step of a finished ZenML run, in a few small queries."""
    page = step_pages(run_id, store)
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


def settle_parent(
    settler: "RunSettler",
    parent_id: str,
    status: FinalStatus,
    failed_step: str | None,
    *,
    current: str | None = None,
    current_failed_step: str | None = None,
    end_time: int | None = None,
) -> bool:
    """Give the parent its final status and failed step; tell whether the status changed.

    Only what differs from `current` (its status, when known) and `current_failed_step` is
    written; `end_time` (milliseconds) is when the run ended, now when not given.
    """
    if failed_step and failed_step != current_failed_step:
        settler.set_tag(parent_id, tags.FAILED_STEP, failed_step, synchronous=True)
    if status == current:
        return False
    settler.set_terminated(parent_id, status, end_time)
    return True


class ParentStatuses:
    """The statuses this process gave parent runs, so each is written once (thread-safe)."""

    def __init__(self, size: int = KNOWN_STATUSES) -> None:
        self._known: BoundedCache[tuple[str, str], str] = BoundedCache(size)
        # Held across the status requests, per parent: its writes must reach MLflow in the order
        # they were decided (a later FAILED after FINISHED), and each only once.
        self._writing = KeyLocks()

    def settle(
        self, settler: "RunSettler", key: tuple[str, str], status: FinalStatus, failed: str | None
    ) -> None:
        """Settle the parent `key` (URI, run id) unless this process already gave it `status`."""
        with self._writing.hold(key):
            if self._known.get(key) == status:
                return
            settle_parent(settler, key[1], status, failed)
            self._known.put(key, status)

    def reopen(self, client: "MlflowClient", key: tuple[str, str], seen: str | None) -> None:
        """Mark a FINISHED parent RUNNING again: its ZenML run is running again (resumed)."""
        with self._writing.hold(key):
            if seen is not None:
                self._known.put(key, seen)
            if self._known.get(key) == "FINISHED":
                client.update_run(key[1], status="RUNNING")
                self._known.put(key, "RUNNING")
