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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracker_flavor.delivery.ledger import Chunk

SPOOL_DIR = "mlflow_plus_spool"
ACKS = "acks"
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


def _write(path: str, text: str) -> None:
    """Write a file durably: fsync'd where the filesystem has a descriptor, then renamed."""
    from zenml.io import fileio

    temporary = path + TEMPORARY_SUFFIX
    with fileio.open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        try:
            os.fsync(handle.fileno())
        except (AttributeError, OSError, ValueError):  # object stores: durable once closed
            pass
    fileio.rename(temporary, path, overwrite=True)


def _list(path: str) -> list[str]:
    """Return the sorted names in a directory of the spool, none when it does not exist."""
    from zenml.io import fileio

    if not fileio.exists(path):
        return []
    return sorted(str(name).rstrip("/").rsplit("/", 1)[-1] for name in fileio.listdir(path))


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
        _write(f"{self.path}/{name}", json.dumps(operations))

    def segments(self) -> list[str]:
        """Return the names of the journal's complete segments, oldest first."""
        return [name for name in _list(self.path) if name.endswith(SEGMENT_SUFFIX)]

    def operations(self) -> Iterator[tuple[str, Operation]]:
        """Yield each operation with its key (`<segment>.<index>`), in journal order."""
        from zenml.io import fileio

        for name in self.segments():
            with fileio.open(f"{self.path}/{name}", "r") as handle:
                operations = json.loads(handle.read())
            stem = name.removesuffix(SEGMENT_SUFFIX)
            for index, operation in enumerate(operations):
                yield f"{stem}.{index}", operation

    def acknowledged(self) -> set[str]:
        """Return the keys of the batches the server confirmed."""
        return set(_list(f"{self.path}/{ACKS}"))

    def acknowledge(self, key: str) -> None:
        """Record that the server confirmed the batch `key`."""
        from zenml.io import fileio

        fileio.makedirs(f"{self.path}/{ACKS}")
        _write(f"{self.path}/{ACKS}/{key}", "")

    def size(self) -> int:
        """Return the bytes of the journal's segments."""
        from zenml.io import fileio

        return sum(int(fileio.size(f"{self.path}/{name}") or 0) for name in self.segments())

    def remove(self) -> None:
        """Delete the journal (all of it was delivered): segments first, their acks last.

        Interrupted, what is left is segments with their acknowledgements, delivered as before.
        """
        from zenml.io import fileio

        for name in self.segments():
            fileio.remove(f"{self.path}/{name}")
        if fileio.exists(self.path):
            fileio.rmtree(self.path)


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
    """Return the number of values an operation carries."""
    if operation["op"] != "log":
        return 0
    return len(operation["metrics"]) + len(operation["params"]) + len(operation["tags"])


def now_ms() -> int:
    """Return the time in milliseconds since the epoch, as MLflow stores times."""
    return int(time.time() * 1000)


@dataclass
class Summary:
    """What a delivery did (or, in a dry run, would do)."""

    runs: int = 0
    steps: int = 0
    points: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)

    def add(self, other: "Summary") -> None:
        """Add another delivery's counts to this one."""
        self.runs += other.runs
        self.steps += other.steps
        self.points += other.points
        self.bytes += other.bytes
        self.skipped += other.skipped
