"""Make a run the thread's active MLflow run without the extra requests of `mlflow.start_run`.

`mlflow.start_run(run_id=...)` fetches the run, rewrites its status and fetches it again; the
tracker already holds the run, so it pushes it on MLflow's thread-local active-run stack directly
and pops it without terminating it (the tracker decides statuses itself).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Run


def push(run: "Run") -> None:
    """Make `run` the active run of the current thread."""
    from mlflow.tracking import fluent

    fluent._active_run_stack.get().append(fluent.ActiveRun(run))


def pop_until(run_id: str) -> list[str]:
    """Remove `run_id` and anything the user left above it from the thread's stack.

    Returns the ids of the runs the user started inside the step and did not end.
    """
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    ids = [run.info.run_id for run in stack]
    if run_id not in ids:
        return []
    position = ids.index(run_id)
    left_open = ids[position + 1 :]
    del stack[position:]
    fluent._last_active_run_id.set(run_id)
    return left_open
