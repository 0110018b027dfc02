"""One creator of a ZenML run's parent run across processes, with ZenML as the lock.

MLflow has no "create if absent" for runs, but ZenML refuses a second tag of the same name. The
process that creates the tag `mlflow-plus-lock:<pipeline run id>` may look for the parent run
and create it; everyone else waits until the parent is recorded in ZenML or the lock is gone.
The holder records the parent before it deletes the tag, and a new holder checks the record
after taking the tag, so no two processes ever create a parent for the same run. Waiting is
bounded: if a holder died with the lock, the waiters go on after `WAIT_SECONDS`, with a warning.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from zenml.client import Client
from zenml.exceptions import EntityExistsError
from zenml.logger import get_logger

logger = get_logger(__name__)

LOCK_PREFIX = "mlflow-plus-lock:"
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2


@contextmanager
def creation_lock(pipeline_run_id: str, recorded: Callable[[], str | None]) -> Iterator[str | None]:
    """Hold the lock for creating the parent run; yield a parent id recorded in the meantime."""
    client = Client()
    name = f"{LOCK_PREFIX}{pipeline_run_id}"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            client.create_tag(name=name)
            break
        except EntityExistsError:
            pass
        if known := recorded():
            yield known
            return
        if time.monotonic() > deadline:
            logger.warning(
                "The lock %s has been held for over %.0f s, probably by a process that died; "
                "going on without it (delete the ZenML tag if this repeats).",
                name,
                WAIT_SECONDS,
            )
            yield None
            return
        time.sleep(POLL_SECONDS)
    try:
        yield recorded()
    finally:
        with suppress(KeyError):
            client.delete_tag(name)
