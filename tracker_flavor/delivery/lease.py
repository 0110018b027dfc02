"""One deliverer per spooled pipeline run, across processes and hosts: a lease in the store.

Object stores have no file locks and no create-if-absent through ZenML's filesystem, so the lease
is an object `<spool root>/.leases/<pipeline run id>.json` naming its owner and when it expires.
A process takes it when it is absent, expired, or held by a dead process on the same host: it
writes its own, waits `SETTLE_SECONDS` (object stores keep the last write) and reads it back; only
the process that reads its own owner holds it. Two takers can both believe they won only if one
of them took longer than `SETTLE_SECONDS` between reading the old lease and writing its own; the
holder reads the lease again before each request that is not idempotent (`Lease.check`), so such
a loser stops before sending anything.
"""

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass

from tracker_flavor.runs.creation_lock import pid_alive

LEASES = ".leases"
LEASE_SECONDS = 60.0
"""How long a lease lasts without renewal: a crashed holder on another host blocks that long."""
SETTLE_SECONDS = 0.5
"""Wait between writing a lease and reading it back: racing writers' writes land meanwhile."""


class LeaseLost(RuntimeError):
    """Another process took the lease over (this one stalled past its expiry)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, and until when (seconds since the epoch)."""

    owner: str
    pid: int
    host: str
    expires: float

    def describe(self) -> str:
        """Return the holder for a one-line message."""
        return f"process {self.pid} on {self.host}"


def path_of(root: str, pipeline_run_id: str) -> str:
    """Return the lease object of a pipeline run's spool."""
    return f"{root}/{LEASES}/{pipeline_run_id}.json"


def _read(path: str) -> Holder | None:
    """Return the lease's holder; None when there is none (or it cannot be read as one)."""
    from zenml.io import fileio

    try:
        with fileio.open(path, "r") as handle:
            data = json.loads(handle.read())
        return Holder(
            str(data["owner"]), int(data["pid"]), str(data["host"]), float(data["expires"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _abandoned(holder: Holder) -> bool:
    """Tell whether a lease may be taken over: expired, or its holder died on this host."""
    if holder.expires < time.time():
        return True
    return holder.host == socket.gethostname() and not pid_alive(holder.pid)


class Lease:
    """A lease this process holds on one pipeline run's spool."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.owner = uuid.uuid4().hex
        self._written = 0.0

    def _write(self) -> None:
        """Write the lease with a fresh expiry."""
        from tracker_flavor.delivery.spool import write_durably

        self._written = time.time()
        holder = {
            "owner": self.owner,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "expires": self._written + LEASE_SECONDS,
        }
        write_durably(self.path, json.dumps(holder))

    def take(self) -> Holder | None:
        """Take the lease; return None when taken, else the process that holds it."""
        from zenml.io import fileio

        current = _read(self.path)
        if current is not None and not _abandoned(current):
            return current
        fileio.makedirs(self.path.rsplit("/", 1)[0])
        self._write()
        time.sleep(SETTLE_SECONDS)
        current = _read(self.path)
        if current is None or current.owner != self.owner:
            return current or Holder("unknown", 0, "unknown", time.time() + LEASE_SECONDS)
        return None

    def check(self) -> None:
        """Make sure the lease is still this process's, renewing it after a third of its time."""
        current = _read(self.path)
        if current is None or current.owner != self.owner:
            taker = current.describe() if current is not None else "another process"
            raise LeaseLost(f"{taker} took over the delivery lease {self.path}")
        if time.time() - self._written > LEASE_SECONDS / 3:
            self._write()

    def release(self) -> None:
        """Give the lease up (only if still this process's)."""
        from zenml.io import fileio

        current = _read(self.path)
        if current is not None and current.owner == self.owner:
            try:
                fileio.remove(self.path)
            except OSError:  # expires by itself
                pass
