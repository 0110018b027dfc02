"""What ZenML records about MLflow runs: every metadata key, and their one reader and writer."""

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.metadata.metadata_types import Uri

from tracker_flavor.runs.creation_lock import creation_lock

if TYPE_CHECKING:
    from zenml.metadata.metadata_types import MetadataType

    Metadata = dict[str, MetadataType]

    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.runs.mlflow_runs import Parent

T = TypeVar("T")

PARENT_RUN_ID_KEY = "mlflow_parent_run_id"
EXPERIMENT_ID_KEY = "mlflow_experiment_id"
RUN_ID_KEY = "mlflow_run_id"
TRACKING_URI_KEY = "mlflow_tracking_uri"
PARENT_START_KEY = "mlflow_parent_start_time"
"""Lets steps in other processes show the parent's start time without fetching it."""

# What a step logged, as its delivery ledger accounts it (delivery/ledger.py).
VALUES_DELIVERED_KEY = "mlflow_values_delivered"
VALUES_NOT_DELIVERED_KEY = "mlflow_values_not_delivered"
VALUES_UNCONFIRMED_KEY = "mlflow_values_unconfirmed"
VALUES_REJECTED_KEY = "mlflow_values_rejected"
VALUES_SPOOLED_KEY = "mlflow_values_spooled"
# Where a step's spool is, and the command that delivers it (delivery/offline.py).
SPOOL_KEY = "mlflow_spool"
SPOOL_SYNC_COMMAND_KEY = "mlflow_spool_sync_command"
SPOOL_DELIVERED_KEY = "mlflow_spool_delivered"
"""Values delivered from the step's spool; the pending keys above are overwritten then."""
SPOOL_DELIVERED = "delivered"
"""What the pending keys read once the spool was delivered (ZenML cannot delete metadata)."""
VALUES_HELD_KEY = "mlflow_values_held_in_memory"
"""Values kept in the process because the spool could not be written (a full or read-only store)."""
VALUES_LOST_KEY = "mlflow_values_lost"
"""Values neither delivered nor spooled nor held: beyond what the process may hold."""
SPOOL_ERROR_KEY = "mlflow_spool_error"
# What was sent once ZenML published the step (watcher/after_step.py).
ARTIFACTS_DELIVERED_KEY = "mlflow_artifacts_delivered"
ARTIFACTS_NOT_DELIVERED_KEY = "mlflow_artifacts_not_delivered"
ARTIFACTS_SKIPPED_KEY = "mlflow_artifacts_skipped"
# The step's accounts, each a dict-valued key (a card of its own in ZenML's dashboard): its
# counts by the part of the flat key after the prefix, e.g. {"delivered": 12}.
VALUES_KEY = "mlflow_values"
ARTIFACTS_KEY = "mlflow_artifacts"
ACCOUNTS = {
    VALUES_KEY: (
        VALUES_DELIVERED_KEY, VALUES_NOT_DELIVERED_KEY, VALUES_UNCONFIRMED_KEY, VALUES_REJECTED_KEY
    ),
    ARTIFACTS_KEY: (ARTIFACTS_DELIVERED_KEY, ARTIFACTS_NOT_DELIVERED_KEY, ARTIFACTS_SKIPPED_KEY),
}  # fmt: skip
DELIVERED_KEYS = (VALUES_DELIVERED_KEY, ARTIFACTS_DELIVERED_KEY)
"""The counts that are no trouble, whatever their value."""
SPOOLED_KEYS = (SPOOL_KEY, VALUES_SPOOLED_KEY)
"""A step that spooled keeps its counts flat: the spool's delivery overwrites them one by one."""
# On the pipeline's ZenML model version: the MLflow model version registered from its output.
REGISTERED_MODEL_KEY = "mlflow_registered_model"
MODEL_VERSION_KEY = "mlflow_model_version"
MODEL_VERSION_URL_KEY = "mlflow_model_version_url"


@dataclass(frozen=True)
class ParentRecord:
    """The parent run a ZenML pipeline run's metadata points at."""

    run_id: str
    experiment_id: str | None
    tracking_uri: str | None
    start_time: int | None

    def is_for(self, connection: "Connection", experiment_id: str) -> bool:
        """Tell whether the record was written for this store and experiment."""
        return self.tracking_uri == connection.shown and self.experiment_id == experiment_id


def read(metadata: Mapping[str, Any]) -> ParentRecord | None:
    """Return the parent recorded in a pipeline run's metadata, None if there is none."""
    parent_id = metadata.get(PARENT_RUN_ID_KEY)
    if not isinstance(parent_id, str):
        return None
    experiment_id, uri, start = (
        metadata.get(EXPERIMENT_ID_KEY),
        metadata.get(TRACKING_URI_KEY),
        metadata.get(PARENT_START_KEY),
    )
    return ParentRecord(
        parent_id,
        experiment_id if isinstance(experiment_id, str) else None,
        uri if isinstance(uri, str) else None,
        start if isinstance(start, int) else None,
    )


def parent_metadata(connection: "Connection", parent: "Parent") -> dict[str, "MetadataType"]:
    """Return the pipeline-run metadata that points at the parent run."""
    metadata: dict[str, MetadataType] = {
        METADATA_EXPERIMENT_TRACKER_URL: Uri(connection.link(parent.experiment_id, parent.run_id)),
        PARENT_RUN_ID_KEY: parent.run_id,
        EXPERIMENT_ID_KEY: parent.experiment_id,
        TRACKING_URI_KEY: connection.shown,
    }
    if parent.start_time is not None:
        metadata[PARENT_START_KEY] = parent.start_time
    return metadata


def step_metadata(
    connection: "Connection", parent: "Parent", run_id: str
) -> dict[str, "MetadataType"]:
    """Return the step-run metadata that points at the step's run and its parent."""
    return {
        METADATA_EXPERIMENT_TRACKER_URL: Uri(connection.link(parent.experiment_id, run_id)),
        RUN_ID_KEY: run_id,
        EXPERIMENT_ID_KEY: parent.experiment_id,
        PARENT_RUN_ID_KEY: parent.run_id,
        TRACKING_URI_KEY: connection.shown,
    }


def _short(card: str, key: str) -> str:
    """Return a count's name in its card: the flat key without the card's prefix."""
    return key.removeprefix(f"{card}_")


def grouped(flat: Mapping[str, "MetadataType"]) -> "Metadata":
    """Return a step's metadata with its counts in their cards, zeros left out if all went well.

    A count other than `delivered` that is not zero is trouble: then the card shows every count.
    A step that spooled keeps the flat keys (see SPOOLED_KEYS).
    """
    if any(key in flat for key in SPOOLED_KEYS):
        return dict(flat)
    result = dict(flat)
    for card, keys in ACCOUNTS.items():
        counts = {key: result.pop(key) for key in keys if key in result}
        trouble = any(value for key, value in counts.items() if key not in DELIVERED_KEYS)
        shown = {_short(card, key): value for key, value in counts.items() if value or trouble}
        if shown:
            result[card] = shown
    return result


def artifacts_account(delivered: int, not_delivered: int, skipped: int) -> "Metadata":
    """Return the step metadata of what was sent after the step: nothing unless it went amiss.

    Then every count, in its card; a step whose outputs all arrived costs ZenML no request.
    """
    if not (not_delivered or skipped):
        return {}
    return grouped({
        ARTIFACTS_DELIVERED_KEY: delivered,
        ARTIFACTS_NOT_DELIVERED_KEY: not_delivered,
        ARTIFACTS_SKIPPED_KEY: skipped,
    })  # fmt: skip


def account(recorded: Mapping[str, Any]) -> dict[str, int]:
    """Return a step's counts by their flat keys (0 where left out), from either layout."""
    counts = {key: 0 for keys in ACCOUNTS.values() for key in keys}
    for card, keys in ACCOUNTS.items():
        shown = recorded.get(card)
        for key in keys:
            value = shown.get(_short(card, key)) if isinstance(shown, Mapping) else None
            value = recorded.get(key) if value is None else value
            if isinstance(value, int):
                counts[key] = value
    return counts


Moved = Mapping[str, tuple[str, str]]
"""Where `zenml-mlflow push` copied runs: source run id -> (experiment id, run id) on the target."""


def moved_parent(
    recorded: Mapping[str, Any], source_uri: str, target: "Connection", moved: Moved
) -> dict[str, "MetadataType"] | None:
    """Return the pipeline-run metadata pointing at the copy of its parent; None if not moved."""
    from tracker_flavor.runs.mlflow_runs import Parent

    record = read(recorded)
    if record is None or record.tracking_uri != source_uri or record.run_id not in moved:
        return None
    experiment_id, run_id = moved[record.run_id]
    return parent_metadata(target, Parent(run_id, experiment_id, "", record.start_time))


def moved_step(
    recorded: Mapping[str, Any], source_uri: str, target: "Connection", moved: Moved
) -> dict[str, "MetadataType"] | None:
    """Return the step-run metadata pointing at the copies of its runs; None if not moved."""
    from tracker_flavor.runs.mlflow_runs import Parent

    run_id, parent_id = recorded.get(RUN_ID_KEY), recorded.get(PARENT_RUN_ID_KEY)
    if (
        recorded.get(TRACKING_URI_KEY) != source_uri
        or not isinstance(run_id, str)
        or not isinstance(parent_id, str)
        or run_id not in moved
        or parent_id not in moved
    ):
        return None
    experiment_id, new_parent = moved[parent_id]
    return step_metadata(target, Parent(new_parent, experiment_id, ""), moved[run_id][1])


def record_run(
    component_id: UUID, pipeline_run_id: UUID, metadata: dict[str, "MetadataType"]
) -> None:
    """Add metadata to a ZenML pipeline run, on behalf of a tracker component."""
    from zenml.client import Client
    from zenml.enums import MetadataResourceTypes
    from zenml.models import RunMetadataResource

    Client().create_run_metadata(
        metadata=metadata,
        resources=[
            RunMetadataResource(id=pipeline_run_id, type=MetadataResourceTypes.PIPELINE_RUN)
        ],
        stack_component_id=component_id,
    )


def spool_delivered(delivered: int) -> dict[str, "MetadataType"]:
    """Return the step metadata that replaces the pending spool keys once it was delivered."""
    return {
        SPOOL_DELIVERED_KEY: delivered,
        VALUES_SPOOLED_KEY: 0,
        VALUES_UNCONFIRMED_KEY: 0,
        SPOOL_KEY: SPOOL_DELIVERED,
        SPOOL_SYNC_COMMAND_KEY: SPOOL_DELIVERED,
    }


def record_step(component_id: UUID, step_run_id: UUID, metadata: dict[str, "MetadataType"]) -> None:
    """Add metadata to a ZenML step run, on behalf of a tracker component."""
    from zenml.client import Client
    from zenml.enums import MetadataResourceTypes
    from zenml.models import RunMetadataResource

    Client().create_run_metadata(
        metadata=metadata,
        resources=[RunMetadataResource(id=step_run_id, type=MetadataResourceTypes.STEP_RUN)],
        stack_component_id=component_id,
    )


class ParentRecords(Protocol):
    """Where the parent run of a ZenML run is recorded, and its creation coordinated."""

    def read(self, pipeline_run_id: str) -> ParentRecord | None:
        """Return the recorded parent of a ZenML run."""

    def write(self, pipeline_run_id: str, parent: "Parent") -> None:
        """Record the parent of a ZenML run."""

    def lock(
        self, pipeline_run_id: str, recorded: Callable[[], T | None]
    ) -> AbstractContextManager[T | None]:
        """Hold the lock on creating the run's parent; yield one recorded meanwhile."""


@dataclass(frozen=True)
class ZenMLRecords:
    """Parent records as ZenML pipeline-run metadata, written on behalf of a tracker component."""

    connection: "Connection"
    component_id: UUID

    def read(self, pipeline_run_id: str) -> ParentRecord | None:
        """Return the recorded parent of a ZenML run."""
        from zenml.client import Client

        run = Client().zen_store.get_run(UUID(pipeline_run_id), hydrate=True)
        return read(run.run_metadata)

    def write(self, pipeline_run_id: str, parent: "Parent") -> None:
        """Record the parent of a ZenML run."""
        record_run(
            self.component_id, UUID(pipeline_run_id), parent_metadata(self.connection, parent)
        )

    def lock(
        self, pipeline_run_id: str, recorded: Callable[[], T | None]
    ) -> AbstractContextManager[T | None]:
        """Hold the cross-process lock on creating the run's parent (see creation_lock.py)."""
        return creation_lock(pipeline_run_id, recorded)
