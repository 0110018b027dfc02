"""Make a run the thread's active MLflow run without the extra requests of `mlflow.start_run`.

`mlflow.start_run(run_id=...)` fetches the run, rewrites its status and fetches it again; the
tracker already holds the run, so it pushes it on MLflow's thread-local active-run stack directly
and pops it without terminating it (the tracker decides statuses itself).
"""

from typing import TYPE_CHECKING

from tracker_flavor import internals

if TYPE_CHECKING:
    from mlflow.entities import Run


def push(run: "Run") -> None:
    """Make `run` the active run of the current thread."""
    internals.push_active_run(run)


def pop_until(run_id: str) -> list[str]:
    """Remove `run_id` and anything the user left above it from the thread's stack.

    Returns the ids of the runs the user started inside the step and did not end.
    """
    return internals.pop_active_runs(run_id)
