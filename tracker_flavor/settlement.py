"""The parent run's status: the outcome rule, the one ZenML-to-MLflow status map, and its writer.

The hooks, the finalizer and `zenml-mlflow runs --repair` all settle a parent through
`settle_parent`; the hooks and the finalizer share one `ParentStatuses`, so a status is written
once per process even when step threads and the finalizer's thread settle at the same moment.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Counts:
    """What a leaf step needs to know about the other steps of its run."""

    settled: int
    """Steps whose latest attempt ended well (the current step, still running, not included)."""
    failed: str | None
    """The first failed step (by name) whose newest attempt failed, if any."""


def decide(counts: Counts, expected: int) -> tuple[Outcome, str | None]:
    """Return the outcome once a leaf step ended well, from the counts of the other steps."""
    if counts.failed:
        return "FAILED", counts.failed
    if counts.settled + 1 >= expected:  # + 1: the current step
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
