"""The parent run's status: the outcome rule, the one ZenML-to-MLflow status map, and its writer.

The hooks, the finalizer and `zenml-mlflow runs --repair` all settle a parent through
`settle_parent`; the hooks and the finalizer share one `ParentStatuses`, so a status is written
once per process even when step threads and the finalizer's thread settle at the same moment.
"""

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from tracker_flavor import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.enums import ExecutionStatus

    from tracker_flavor.detached import RunSettler

Outcome = Literal["RUNNING", "FINISHED", "FAILED"]
FinalStatus = Literal["FINISHED", "FAILED"]

KNOWN_STATUSES = 4096
"""Parent statuses a process remembers writing (bounded for long-lived processes)."""


def final_status(status: "ExecutionStatus") -> FinalStatus | None:
    """Return the MLflow status of a finished ZenML run or step, None while it is not over."""
    if not status.is_finished:
        return None
    return "FINISHED" if status.is_successful else "FAILED"


def first_failed(statuses: Mapping[str, "ExecutionStatus"]) -> str | None:
    """Return the step the parent is tagged with as failed: the first failed one by name."""
    from zenml.enums import ExecutionStatus

    failed = sorted(name for name, status in statuses.items() if status == ExecutionStatus.FAILED)
    return failed[0] if failed else None


def outcome(
    latest: Mapping[str, "ExecutionStatus"],
    expected: Iterable[str] | None,
    current_step: str,
    current_failed: bool,
) -> tuple[Outcome, str | None]:
    """Return the parent's status once `current_step` has ended, and the failed step if any.

    `latest` holds the status of each step's latest attempt; `expected` names every step of a
    static pipeline (None for a dynamic one, whose steps are not known up front: its parent stays
    RUNNING until a step fails or the run is settled afterwards).
    """
    from zenml.enums import ExecutionStatus

    statuses = {
        **latest,
        current_step: ExecutionStatus.FAILED if current_failed else ExecutionStatus.COMPLETED,
    }
    if (failed := first_failed(statuses)) is not None:
        return "FAILED", current_step if current_failed else failed
    if expected is None:
        return "RUNNING", None
    names = set(expected)
    if names <= set(statuses) and all(statuses[name].is_finished for name in names):
        return "FINISHED", None
    return "RUNNING", None


def settle_parent(
    settler: "RunSettler",
    parent_id: str,
    status: FinalStatus,
    failed_step: str | None,
    *,
    current: str | None = None,
    current_failed_step: str | None = None,
) -> bool:
    """Give the parent its final status and failed step; tell whether the status changed.

    Only what differs from `current` (its status, when known) and `current_failed_step` is
    written.
    """
    if failed_step and failed_step != current_failed_step:
        settler.set_tag(parent_id, tags.FAILED_STEP, failed_step, synchronous=True)
    if status == current:
        return False
    settler.set_terminated(parent_id, status)
    return True


class ParentStatuses:
    """The statuses this process gave parent runs, so each is written once (thread-safe)."""

    def __init__(self, size: int = KNOWN_STATUSES) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._size = size

    def _remember(self, key: tuple[str, str], status: str) -> None:
        self._known[key] = status
        self._known.move_to_end(key)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    def settle(
        self, settler: "RunSettler", key: tuple[str, str], status: FinalStatus, failed: str | None
    ) -> None:
        """Settle the parent `key` (URI, run id) unless this process already gave it `status`."""
        with self._lock:
            if self._known.get(key) == status:
                return
            settle_parent(settler, key[1], status, failed)
            self._remember(key, status)

    def reopen(self, client: "MlflowClient", key: tuple[str, str], seen: str | None) -> None:
        """Mark a FINISHED parent RUNNING again: its ZenML run is running again (resumed)."""
        with self._lock:
            if seen is not None:
                self._remember(key, seen)
            if self._known.get(key) == "FINISHED":
                client.update_run(key[1], status="RUNNING")
                self._remember(key, "RUNNING")
