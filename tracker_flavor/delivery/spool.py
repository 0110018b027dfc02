"""The durable spool: what steps could not send to a down tracking server, in the artifact store.

Layout, through ZenML's artifact-store filesystem (a local store is a folder, S3/GCS work the
same): `<artifact store>/mlflow_plus_spool/<server>/<pipeline run id>/<step run id>/` holds
(`<server>` is a digest of the tracking URI without credentials: each tracker syncs its own)

- `<time>-<pid>-<n>.json`: journal segments, each a JSON list of operations, written once (to
  a temporary name, fsync'd where the filesystem has a descriptor, then renamed) and never
  changed: object stores cannot append, so the journal grows by whole segments;
- `acks/<segment>.<operation>.<batch>`: one empty file per batch the server confirmed.

Operations are plain JSON objects (never credentials; the tracking URI is stored without them):
`run` (a run the step could not create: placeholder id, kind parent/step, experiment, name,
tags, start time), `log` (metrics as [key, value, timestamp, step], params, tags for a run id or
placeholder; `unconfirmed` when a request carrying them got no answer), `end` (a run's status
and end time) and `settle` (the parent's final status and failed step).
"""

import hashlib
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_flavor.delivery.ledger import Chunk

SPOOL_DIR = "mlflow_plus_spool"
ACKS = "acks"
QUARANTINE = ".quarantine"
HELD_PREFIX = "held."
"""Keys of operations kept in memory (HeldJournal), apart from the segments' time-stamped ones."""
SEGMENT_SUFFIX = ".json"
TEMPORARY_SUFFIX = ".tmp"

Operation = dict[str, Any]


def root_of(artifact_store_path: str, server: str) -> str:
    """Return the spool's root for a tracking server (URI without credentials) in a store."""
    digest = hashlib.sha256(server.encode()).hexdigest()[:16]
    return f"{artifact_store_path.rstrip('/')}/{SPOOL_DIR}/{digest}"


def active_root(server: str) -> str:
    """Return the spool's root for a tracking server in the active stack's artifact store."""
    from zenml.client import Client

    return root_of(Client().active_stack.artifact_store.path, server)


def write_durably(path: str, text: str) -> None:
    """Write a file durably: fsync'd where the filesystem has a descriptor, then renamed.

    A write that fails (a full or read-only store) leaves no temporary file behind.
    """
    from zenml.io import fileio

    # Its own temporary name: writers side by side (lease takers) never rename another's.
    temporary = f"{path}.{uuid.uuid4().hex}{TEMPORARY_SUFFIX}"
    try:
        with fileio.open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            try:
                os.fsync(handle.fileno())
            except (AttributeError, OSError, ValueError):  # object stores: durable once closed
                pass
        fileio.rename(temporary, path, overwrite=True)
    except BaseException:
        try:
            if fileio.exists(temporary):
                fileio.remove(temporary)
        except OSError:  # the store refuses even that: nothing more can be done
            pass
        raise


def _forget_listing(path: str) -> None:
    """Make the next look at `path` ask the store, not what this process listed before.

    fsspec's object-store filesystems (S3, GCS, Azure) keep every listing for the process's life:
    segments and acknowledgements other processes wrote or removed since would not show, and a
    spool another process delivered would be delivered again as empty (its metadata reset to 0).
    """
    from zenml.io.filesystem_registry import default_filesystem_registry

    try:
        registered = default_filesystem_registry.get_filesystem_for_path(path)
    except ValueError:  # no filesystem for the scheme: listing fails in its own way
        return
    # ZenML registers an artifact store's bound methods, each wrapped by its path check (`func`).
    method: Any = registered.listdir
    store = getattr(getattr(method, "func", method), "__self__", None)
    invalidate = getattr(getattr(store, "filesystem", None), "invalidate_cache", None)
    if callable(invalidate):
        invalidate(path)


def _list(path: str) -> list[str]:
    """Return the sorted names in a directory of the spool, none when it does not exist."""
    from zenml.io import fileio

    _forget_listing(path)
    try:
        listed = fileio.listdir(path) if fileio.exists(path) else []
    except FileNotFoundError:  # removed by another process between the two calls
        return []
    names = (str(name).rstrip("/").rsplit("/", 1)[-1] for name in listed)
    return sorted(name for name in names if not name.startswith("."))  # leases, quarantine


@dataclass(frozen=True)
class Journal:
    """The spool of one step run: its segments and the acknowledgements of their batches."""

    path: str
    _appended: "itertools.count[int]" = field(
        default_factory=itertools.count, compare=False, repr=False
    )
    """Orders this writer's segments that share a nanosecond."""

    @classmethod
    def of(cls, root: str, pipeline_run_id: str, step_run_id: str) -> "Journal":
        """Return the journal of a step run under a spool root."""
        return cls(f"{root}/{pipeline_run_id}/{step_run_id}")

    def append(self, operations: list[Operation]) -> None:
        """Add operations to the journal in one new segment (nothing when empty)."""
        from zenml.io import fileio

        if not operations:
            return
        fileio.makedirs(self.path)
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._appended):06d}{SEGMENT_SUFFIX}"
        write_durably(f"{self.path}/{name}", json.dumps(operations))

    def segments(self) -> list[str]:
        """Return the names of the journal's complete segments, oldest first."""
        return [name for name in _list(self.path) if name.endswith(SEGMENT_SUFFIX)]

    def operations(self) -> Iterator[tuple[str, Operation]]:
        """Yield each readable operation with its key (`<segment>.<index>`), in journal order."""
        yield from self.read(quarantine=False).operations

    def read(self, quarantine: bool = True) -> "Contents":
        """Return the journal's valid operations; set damaged segments aside (`quarantine`).

        A segment that is not a JSON list of operations cannot be trusted in any part: it is moved
        to `<root>/.quarantine/<run>/<step>/` (where a person can look at it) and its values
        count as lost. An entry that is not a valid operation, or a metric point that is not
        [key, number, time, step], is skipped and counted; the rest is delivered.
        """
        from zenml.io import fileio

        contents = Contents()
        for name in self.segments():
            source = f"{self.path}/{name}"
            try:
                with fileio.open(source, "r") as handle:
                    operations = json.loads(handle.read())
                if not isinstance(operations, list):
                    raise ValueError("not a list of operations")
            except FileNotFoundError:  # delivered and removed by another process meanwhile
                continue
            except (ValueError, UnicodeDecodeError) as error:
                contents.quarantined.append(Damaged(name, str(error)))
                if quarantine:
                    place = self.quarantine_path
                    fileio.makedirs(place)
                    fileio.rename(source, f"{place}/{name}", overwrite=True)
                continue
            stem = name.removesuffix(SEGMENT_SUFFIX)
            for index, operation in enumerate(operations):
                valid, skipped = _checked(operation)
                contents.skipped += skipped
                if valid is not None:
                    contents.operations.append((f"{stem}.{index}", valid))
        return contents

    @property
    def step_run_id(self) -> str:
        """Return the id of the ZenML step run whose journal this is."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def quarantine_path(self) -> str:
        """Return where the journal's damaged segments are set aside."""
        root, run, step = self.path.rstrip("/").rsplit("/", 2)
        return f"{root}/{QUARANTINE}/{run}/{step}"

    def acknowledged(self) -> set[str]:
        """Return the keys of the batches the server confirmed."""
        return set(_list(f"{self.path}/{ACKS}"))

    def acknowledge(self, key: str) -> None:
        """Record that the server confirmed the batch `key`."""
        from zenml.io import fileio

        fileio.makedirs(f"{self.path}/{ACKS}")
        write_durably(f"{self.path}/{ACKS}/{key}", "")

    def size(self) -> int:
        """Return the bytes of the journal's segments."""
        from zenml.io import fileio

        total = 0
        for name in self.segments():
            try:
                total += int(fileio.size(f"{self.path}/{name}") or 0)
            except FileNotFoundError:  # delivered and removed by another process meanwhile
                pass
        return total

    def remove(self) -> None:
        """Delete the journal (all of it was delivered): segments first, their acks last.

        Interrupted, what is left is segments with their acknowledgements, delivered as before.
        """
        from zenml.io import fileio

        for name in self.segments():
            fileio.remove(f"{self.path}/{name}")
        if fileio.exists(self.path):
            fileio.rmtree(self.path)


@dataclass(frozen=True)
class Damaged:
    """A segment that could not be read, set aside."""

    name: str
    reason: str


@dataclass
class Contents:
    """What a journal holds that can be delivered, and what of it is damaged."""

    operations: list[tuple[str, Operation]] = field(default_factory=list)
    quarantined: list[Damaged] = field(default_factory=list)
    skipped: int = 0
    """Entries and metric points that were not valid, left out."""


_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "run": {"placeholder": str, "kind": str, "experiment": str, "name": str, "tags": dict,
            "uri": str, "pipeline_run_id": str, "start_time": int},
    "log": {"run_id": str, "metrics": list, "params": dict, "tags": dict},
    "end": {"run_id": str, "status": str, "end_time": int},
    "settle": {"run_id": str, "status": str, "end_time": int},
    "publish": {"settings": dict},
}  # fmt: skip
"""The fields each operation needs, with their types."""


def _point(point: Any) -> bool:
    """Tell whether a journaled metric point is [key, number, time, step]."""
    return (
        isinstance(point, list)
        and len(point) == 4
        and isinstance(point[0], str)
        and isinstance(point[1], (int, float))
        and not isinstance(point[1], bool)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in point[2:])
    )


def _checked(operation: Any) -> tuple[Operation | None, int]:
    """Return an entry as a valid operation (bad metric points left out) and what was skipped."""
    fields = _FIELDS.get(operation.get("op", "")) if isinstance(operation, dict) else None
    if fields is None or any(not isinstance(operation.get(k), t) for k, t in fields.items()):
        return None, max(points(operation), 1) if isinstance(operation, dict) else 1
    if operation["op"] != "log":
        return operation, 0
    good = [point for point in operation["metrics"] if _point(point)]
    return {**operation, "metrics": good}, len(operation["metrics"]) - len(good)


@dataclass(frozen=True)
class HeldJournal(Journal):
    """A step's journal kept in the process's memory: the artifact store could not take it."""

    held: list[Operation] = field(default_factory=list, compare=False)
    acks: set[str] = field(default_factory=set, compare=False)

    def segments(self) -> list[str]:
        """Return one name while anything is held."""
        return [HELD_PREFIX + SEGMENT_SUFFIX.lstrip(".")] if self.held else []

    def read(self, quarantine: bool = True) -> Contents:
        """Return the held operations (they were never written, so never damaged)."""
        return Contents(operations=[(f"{HELD_PREFIX}{i}", op) for i, op in enumerate(self.held)])

    def acknowledged(self) -> set[str]:
        """Return the keys of the batches the server confirmed."""
        return set(self.acks)

    def acknowledge(self, key: str) -> None:
        """Record that the server confirmed the batch `key`."""
        self.acks.add(key)

    def size(self) -> int:
        """Return about how many bytes the held operations take."""
        return len(json.dumps(self.held))

    def remove(self) -> None:
        """Forget the held operations (all of them were delivered)."""
        self.held.clear()


def spooled_runs(root: str) -> list[str]:
    """Return the ids of the pipeline runs with a spool under `root`."""
    return [run for run in _list(root) if step_journals(root, run)]


def step_journals(root: str, pipeline_run_id: str) -> list[Journal]:
    """Return the journals of a pipeline run's steps, in the order they were first written."""
    journals = [
        Journal.of(root, pipeline_run_id, step) for step in _list(f"{root}/{pipeline_run_id}")
    ]
    dated = [(segments[0], journal) for journal in journals if (segments := journal.segments())]
    return [journal for _, journal in sorted(dated, key=lambda pair: pair[0])]


# Operations.


def run_operation(
    placeholder: str,
    kind: str,
    *,
    experiment: str,
    artifact_location: str | None,
    name: str,
    run_tags: dict[str, str],
    uri: str,
    pipeline_run_id: str,
    parent: str | None = None,
    start_time: int | None = None,
) -> Operation:
    """Return the operation that creates (or finds) a run the step could not create."""
    return {
        "op": "run",
        "placeholder": placeholder,
        "kind": kind,
        "experiment": experiment,
        "artifact_location": artifact_location,
        "name": name,
        "tags": run_tags,
        "uri": uri,
        "pipeline_run_id": pipeline_run_id,
        "parent": parent,
        "start_time": start_time if start_time is not None else now_ms(),
    }


def log_operation(
    run_id: str,
    metrics: list[tuple[str, float, int, int]] | None = None,
    params: dict[str, str] | None = None,
    run_tags: dict[str, str] | None = None,
    unconfirmed: bool = False,
) -> Operation:
    """Return the operation that logs values into a run (a run id or a placeholder)."""
    return {
        "op": "log",
        "run_id": run_id,
        "metrics": [list(point) for point in metrics or []],
        "params": params or {},
        "tags": run_tags or {},
        "unconfirmed": unconfirmed,
    }


def end_operation(run_id: str, status: str) -> Operation:
    """Return the operation that ends a run with a status, at the time it ended."""
    return {"op": "end", "run_id": run_id, "status": status, "end_time": now_ms()}


def settle_operation(run_id: str, status: str, failed_step: str | None) -> Operation:
    """Return the operation that gives the parent run its final status."""
    return {
        "op": "settle",
        "run_id": run_id,
        "status": status,
        "failed_step": failed_step,
        "end_time": now_ms(),
    }


def publish_operation(settings: dict[str, Any]) -> Operation:
    """Return the operation that sends the step's outputs, reports and lineage once delivered."""
    return {"op": "publish", "settings": settings}


def chunk_operations(chunks: list["Chunk"]) -> list[Operation]:
    """Return the log operations of values the batching queue could not deliver.

    Consecutive chunks of one run (and one confirmation state) make one operation, so a step's
    thousands of `log_metric` calls are journaled and acknowledged by the thousand.
    """
    operations: list[Operation] = []
    for chunk in chunks:
        last = operations[-1] if operations else None
        if last is None or (last["run_id"], last["unconfirmed"]) != (chunk.run_id, chunk.sent):
            last = log_operation(chunk.run_id, unconfirmed=chunk.sent)
            operations.append(last)
        last["metrics"] += [[m.key, m.value, m.timestamp, m.step] for m in chunk.metrics]
        last["params"].update({p.key: p.value for p in chunk.params})
        last["tags"].update({t.key: t.value for t in chunk.tags})
    return operations


def points(operation: Operation) -> int:
    """Return the number of values an operation carries (what can be counted of a bad one)."""
    if operation.get("op") != "log":
        return 0
    return sum(
        len(v)
        for k in ("metrics", "params", "tags")
        if isinstance(v := operation.get(k), (list, dict))
    )


def now_ms() -> int:
    """Return the time in milliseconds since the epoch, as MLflow stores times."""
    return int(time.time() * 1000)


@dataclass
class RunReport:
    """What a delivery did with one pipeline run's spool."""

    run: str
    spooled: int = 0
    """Values in the spool's readable segments."""
    delivered: int = 0
    quarantined: int = 0
    """Damaged segments set aside (their values are lost)."""
    skipped: int = 0
    """Invalid entries and metric points left out."""
    busy: str | None = None
    """The process that holds the run's lease and delivers it instead."""
    problems: list[str] = field(default_factory=list)
    """One line per step that could not be delivered (its journal stays)."""


@dataclass
class Summary:
    """What a delivery did (or, in a dry run, would do)."""

    runs: int = 0
    steps: int = 0
    points: int = 0
    bytes: int = 0
    reports: list[RunReport] = field(default_factory=list)

    def add(self, other: "Summary") -> None:
        """Add another delivery's counts to this one."""
        self.runs += other.runs
        self.steps += other.steps
        self.points += other.points
        self.bytes += other.bytes
        self.reports += other.reports
