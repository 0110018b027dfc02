"""One creator of a ZenML run's parent run across processes, with ZenML as the lock.

MLflow has no "create if absent" for runs, but ZenML refuses a second tag of the same name. The
process that creates the tag `mlflow-plus-lock:<pipeline run id>` may look for the parent run
and create it; everyone else waits until the parent is recorded in ZenML or the lock is gone.
The holder records the parent before it deletes the tag, and a new holder checks the record
after taking the tag, so no two processes ever create a parent for the same run.

A tag carries only a name, so the holder names itself in a second tag,
`mlflow-plus-lock:holder:<lock tag id>:<pid>@<host>`. A waiter takes over a lock at once when
its holder is a dead process on the same host, and after `STALE_SECONDS` when the holder is on
another host (or never named itself); it deletes the stale tags on the way. Waiting is bounded
all the same: after `WAIT_SECONDS` the waiters go on without the lock, with a warning.
"""

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from zenml.client import Client
from zenml.exceptions import EntityExistsError
from zenml.logger import get_logger
from zenml.utils.time_utils import utc_now

logger = get_logger(__name__)

LOCK_PREFIX = "mlflow-plus-lock:"
HOLDER_PREFIX = f"{LOCK_PREFIX}holder:"
WAIT_SECONDS = 60.0
STALE_SECONDS = 30.0
"""Age after which a lock held from another host, or by no named holder, counts as abandoned."""
POLL_SECONDS = 0.2

T = TypeVar("T")


@dataclass(frozen=True)
class Holder:
    """The process that holds a lock."""

    pid: int
    host: str

    def tag(self, lock_id: UUID) -> str:
        """Return the name of the tag that names this holder of the lock `lock_id`."""
        return f"{HOLDER_PREFIX}{lock_id}:{self.pid}@{self.host}"

    @classmethod
    def parse(cls, tag: str) -> "Holder | None":
        """Return the holder a holder tag names, None if the name is not one."""
        pid, _, host = tag.rsplit(":", 1)[-1].partition("@")
        return cls(int(pid), host) if pid.isdigit() and host else None


def this_process() -> Holder:
    """Return this process as a lock holder."""
    return Holder(os.getpid(), socket.gethostname())


def pid_alive(pid: int) -> bool:
    """Tell whether a process `pid` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def is_stale(
    holder: Holder | None,
    age_seconds: float,
    here: Holder,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """Tell whether a lock of this age, held by `holder`, was abandoned."""
    if holder is not None and holder.host == here.host:
        return not alive(holder.pid)
    return age_seconds > STALE_SECONDS


def _holder_tags(client: Client, lock_id: UUID) -> list[str]:
    """Return the names of the holder tags of the lock `lock_id`."""
    page = client.list_tags(name=f"startswith:{HOLDER_PREFIX}{lock_id}:", size=10)
    return [tag.name for tag in page.items]


def _delete(client: Client, *names_or_ids: str | UUID) -> None:
    """Delete tags, if they are still there."""
    for name_or_id in names_or_ids:
        with suppress(KeyError):
            client.delete_tag(name_or_id)


def _take_over_if_stale(client: Client, name: str, here: Holder) -> bool:
    """Delete the lock `name` and its holder tag if its holder is gone; tell whether it was."""
    try:
        lock = client.get_tag(name, allow_name_prefix_match=False)
    except KeyError:
        return True  # released meanwhile
    holders = _holder_tags(client, lock.id)
    holder = Holder.parse(holders[0]) if holders else None
    created: datetime = lock.created
    age = (utc_now(tz_aware=created) - created).total_seconds()
    if not is_stale(holder, age, here):
        return False
    logger.warning(
        "Taking over the lock %s: its holder (%s) is gone.",
        name,
        f"process {holder.pid} on {holder.host}" if holder else "unnamed",
    )
    # By id: if another waiter took the lock over first, its new tag has another id.
    _delete(client, lock.id, *holders)
    return True


@contextmanager
def creation_lock(pipeline_run_id: str, recorded: Callable[[], T | None]) -> Iterator[T | None]:
    """Hold the lock for creating the parent run; yield a parent recorded in the meantime."""
    client = Client()
    name = f"{LOCK_PREFIX}{pipeline_run_id}"
    here = this_process()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            lock = client.create_tag(name=name)
            break
        except EntityExistsError:
            pass
        if known := recorded():
            yield known
            return
        if _take_over_if_stale(client, name, here):
            continue
        if time.monotonic() > deadline:
            logger.warning(
                "The lock %s has been held for over %.0f s; going on without it (delete the "
                "ZenML tag if this repeats).",
                name,
                WAIT_SECONDS,
            )
            yield None
            return
        time.sleep(POLL_SECONDS)
    holder_tag = here.tag(lock.id)
    try:
        client.create_tag(name=holder_tag)
        yield recorded()
    finally:
        _delete(client, lock.id, holder_tag)
