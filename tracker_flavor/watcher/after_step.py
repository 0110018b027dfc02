"""What the tracker sends to MLflow once ZenML has published a step: outputs, lineage, model.

ZenML 0.98's step runner calls the tracker's hooks (`get_step_run_metadata`, `cleanup_step_run`)
before it materializes the step's outputs, and publishes them last. So this runs when the
tracker's watcher sees the step COMPLETED, in the process that ran it: the artifact versions
then have their ids, versions, files and visualizations, and nothing is materialized twice.
It costs ZenML no call when all went well in a step launched in this process: the step run
comes from its publication, its outputs' visualizations from ZenML's request that stored them
(watcher/launches.py), and the outputs' link rides on that request (`label_outputs`, from the
hook). A step published elsewhere costs one read of its outputs' visualizations.
"""

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from zenml.logger import get_logger

from tracker_flavor.concurrency.background import started
from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow.errors import explained
from tracker_flavor.runs import metadata
from tracker_flavor.watcher import lineage, models, outputs
from tracker_flavor.watcher.polling import one_of
from tracker_flavor.watcher.publisher import RunInfos, log_inputs, publisher

if TYPE_CHECKING:
    from concurrent.futures import Future
    from uuid import UUID

    from zenml.config.step_run_info import StepRunInfo
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import PipelineSnapshotResponse, StepRunResponse

    from tracker_flavor.concurrency.locks import ReadersWriterLock
    from tracker_flavor.config.settings import MLflowPlusSettings
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.mlflow.quiet import RequestNoise
    from tracker_flavor.runs.metadata import Metadata
    from tracker_flavor.runs.steps import StepRun
    from tracker_flavor.watcher.publisher import Publisher

logger = get_logger(__name__)

UNDELIVERED_TAG = "zenml.artifacts_not_delivered"
LINEAGE_THREAD = "mlflow-plus-lineage"
SENDER_THREAD = "mlflow-plus-outputs"


def wanted(settings: "MLflowPlusSettings") -> bool:
    """Tell whether the settings ask for anything after the step (else it costs nothing)."""
    return bool(
        settings.track_output
        or settings.track_reports
        or settings.track_intermediates
        or settings.lineage
        or settings.log_model
    )


def handed_off(settings: "MLflowPlusSettings", launched_here: bool) -> bool:
    """Tell whether a step's sending may overlap the next step's launch in this process.

    Not with a model to log: a later step may load the version it registers.
    """
    return launched_here and not settings.log_model


@dataclass(frozen=True)
class Target:
    """The MLflow run a step's outputs go to, and what ZenML records about it."""

    run_id: str
    model_link: Callable[[str, str], str]
    """The UI link of a registered model version (name, version)."""
    run_metadata: "Metadata"
    """Recorded on each output artifact version (the run's link and ids)."""


def artifact_refs(step_run: "StepRunResponse") -> list[lineage.ArtifactRef]:
    """Return the step run's input and output artifact versions."""
    refs = []
    for role, slots in (("input", step_run.inputs), ("output", step_run.outputs)):
        for slot, versions in slots.items():
            for version in versions:
                refs.append(
                    lineage.ArtifactRef(
                        id=str(version.id), name=version.artifact.name,
                        version=str(version.version), uri=version.uri,
                        role="input" if role == "input" else "output", slot=slot,
                    )
                )  # fmt: skip
    return refs


Reports = dict["UUID", tuple[tuple[str, str], ...]]
"""(file URI, ZenML visualization type) of each visualization, by artifact version id."""


def reports_of(step_run: "StepRunResponse", settings: "MLflowPlusSettings") -> Reports:
    """Return the visualizations of the outputs `track_reports` selects (one read at most)."""
    from zenml.client import Client
    from zenml.models import ArtifactVersionFilter

    chosen = [
        versions[0]
        for name, versions in step_run.outputs.items()
        if versions and outputs.selected(settings.track_reports, name)
    ]
    # A version as ZenML's runner stored it carries its details; the rest are read at once.
    known = {version.id: version for version in chosen if version.metadata is not None}
    missing = [version.id for version in chosen if version.id not in known]
    if missing:
        page = Client().zen_store.list_artifact_versions(
            ArtifactVersionFilter(id=one_of(missing), size=len(missing)), hydrate=True
        )
        known.update((version.id, version) for version in page.items)
    return {
        version_id: tuple((v.uri, str(v.type)) for v in version.visualizations or [])
        for version_id, version in known.items()
    }


def planned_outputs(
    step_run: "StepRunResponse", consumed: set[str], reports: Reports
) -> list[outputs.Output]:
    """Return the step run's outputs as the upload plan sees them."""
    return [
        outputs.Output(
            name=name,
            uri=version.uri,
            consumed=name in consumed,
            reports=reports.get(version.id, ()),
        )
        for name, versions in step_run.outputs.items()
        for version in versions[:1]
    ]


def label_outputs(
    settings: "MLflowPlusSettings", output_names: Iterable[str], run_metadata: "Metadata"
) -> None:
    """Give the outputs the step is about to store the MLflow run's link and ids (`lineage`).

    Called from a step hook, before ZenML stores the outputs: the metadata goes with ZenML's
    own request that creates them (unless `enable_artifact_metadata` is off, then none does).
    A key the step's code set on an output stays as it set it.
    """
    from zenml.steps import StepContext

    context = StepContext.get()
    if not settings.lineage or context is None:  # no step running: no outputs to store
        return
    for name in output_names:
        own = context.get_output_metadata(name)
        context.add_output_metadata(
            {key: value for key, value in run_metadata.items() if key not in own}, name
        )


EXIT_WAIT_SECONDS = 120.0
"""How long the process's exit waits for a step's outputs that are being sent."""


class Deliveries:
    """The deliveries under way in the process, which its exit waits for (runtime state)."""

    def __init__(self) -> None:
        self._sending = 0
        self._idle = threading.Condition()
        self._handed: list[Future[None]] = []
        self.datasets = threading.Lock()
        """One dataset write at a time in this process, so its own steps never race each other."""
        self.runs = RunInfos()
        """The runs' artifact URIs, asked once per run and process, not once per step."""

    @contextmanager
    def counted(self) -> Iterator[None]:
        """Count a delivery in flight for the exit's wait."""
        self._begin()
        try:
            yield
        finally:
            self._end()

    def _begin(self) -> None:
        with self._idle:
            self._sending += 1

    def _end(self) -> None:
        with self._idle:
            self._sending -= 1
            self._idle.notify_all()

    def hand_off(self, send: Callable[[], None], lock: "ReadersWriterLock") -> None:
        """Send a step's outputs on a thread of their own, holding the autolog `lock` shared.

        The launch after it in this process waits for it before it returns (`handed`); the
        exit waits for it too. A failure is logged, never raised.
        """
        self._begin()  # counted from now: the exit must not miss a thread about to start

        def run() -> None:
            try:
                with lock.shared():  # as the watcher's settling: clients import lazily
                    send()
            except Exception as error:
                logger.warning(
                    "Could not send a step's outputs to MLflow: %s", redact_credentials(str(error))
                )
            finally:
                self._end()

        with self._idle:
            self._under_way().append(started(run, SENDER_THREAD))

    def handed(self) -> "list[Future[None]]":
        """Return the hand-offs still under way."""
        with self._idle:
            return list(self._under_way())

    def _under_way(self) -> "list[Future[None]]":
        """Forget the hand-offs that are done; return the others (the caller holds `_idle`)."""
        self._handed = [future for future in self._handed if not future.done()]
        return self._handed

    def wait(self, timeout: float = EXIT_WAIT_SECONDS) -> bool:
        """Let a delivery on the watcher thread finish; tell whether none is left.

        The watcher's exit check sends what it still has pending itself, but not what its
        daemon thread is sending at that moment; a daemon thread cut off at shutdown can abort
        the process.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._sending == 0, timeout=timeout)


class StepFacts(Protocol):
    """What sending a step's outputs needs to know of it (a StepRunInfo has it)."""

    @property
    def run_id(self) -> "UUID":
        """The ZenML pipeline run's id."""

    @property
    def step_run_id(self) -> "UUID":
        """The ZenML step run's id."""

    @property
    def pipeline_step_name(self) -> str:
        """The step's name in the pipeline."""

    @property
    def snapshot(self) -> "PipelineSnapshotResponse | None":
        """The pipeline run's snapshot."""


@dataclass(frozen=True)
class PublishedStep:
    """A published step known only by its ids (a spool's step, delivered later)."""

    run_id: "UUID"
    step_run_id: "UUID"
    pipeline_step_name: str
    snapshot: "PipelineSnapshotResponse | None"


def deliver(
    publisher: "Publisher",
    info: StepFacts,
    step_run: "StepRunResponse",
    settings: "MLflowPlusSettings",
    target: Target,
    deliveries: Deliveries,
    noise: "RequestNoise",
) -> "Metadata":
    """Send the published step's outputs, lineage and model; return the account as metadata."""
    step_name = info.pipeline_step_name
    account = outputs.Account()
    consumed = outputs.consumed_outputs(info.snapshot, step_name)
    planned = planned_outputs(step_run, consumed, reports_of(step_run, settings))
    uploads = outputs.plan(settings, step_name, planned)
    # The datasets' request and the uploads go to the server side by side: one wait, not two.
    recorded = None
    if settings.lineage:
        recorded = _record_lineage(publisher, step_name, step_run, target, deliveries, noise)
    try:
        outputs.upload(publisher, target.run_id, uploads, settings.max_artifact_mb, account)
    finally:  # the delivery ends with its datasets' request, however the uploads went
        error = recorded.exception() if recorded is not None else None
    if error is not None:  # counted like an upload that did not arrive
        logger.warning(
            "Could not record the datasets of step %r on MLflow run %s (lineage): %s",
            step_name,
            target.run_id,
            redact_credentials(str(error)),
        )
        account.not_delivered.append("datasets (lineage)")
    elif recorded is not None and recorded.result():
        account.delivered += 1
    if settings.log_model:
        _log_model(publisher, info, step_run, settings, target, account)
    if account.not_delivered:
        publisher.set_tag(target.run_id, UNDELIVERED_TAG, ", ".join(account.not_delivered))
    return metadata.artifacts_account(
        account.delivered, len(account.not_delivered), account.skipped
    )


def _record_lineage(
    publisher: "Publisher",
    step_name: str,
    step_run: "StepRunResponse",
    target: Target,
    deliveries: Deliveries,
    noise: "RequestNoise",
) -> "Future[bool]":
    """Start recording the step's artifact versions as datasets of its run; tell if any were."""

    def record() -> bool:
        refs = artifact_refs(step_run)
        if not refs:
            return False
        with noise.tracker_requests():
            datasets = lineage.dataset_inputs(step_name, refs)
            log_inputs(publisher, target.run_id, datasets, deliveries.datasets)
        return True

    return started(record, LINEAGE_THREAD)


def _record_on_artifacts(step_run: "StepRunResponse", run_metadata: "Metadata") -> None:
    """Give every output artifact version the MLflow run's link and ids (one ZenML request)."""
    from zenml.client import Client
    from zenml.enums import MetadataResourceTypes
    from zenml.models import RunMetadataResource

    resources = [
        RunMetadataResource(id=version.id, type=MetadataResourceTypes.ARTIFACT_VERSION)
        for versions in step_run.outputs.values()
        for version in versions
    ]
    if resources:
        Client().create_run_metadata(metadata=run_metadata, resources=resources)


def _log_model(
    publisher: "Publisher",
    info: StepFacts,
    step_run: "StepRunResponse",
    settings: "MLflowPlusSettings",
    target: Target,
    account: outputs.Account,
) -> None:
    """Log (and register) the `log_model` output; warn, naming it, when that cannot be done."""
    name = settings.log_model
    versions = step_run.outputs.get(name or "")
    if not name or not versions:
        logger.warning(
            "log_model=%r names no output of step %r (its outputs: %s); no model was logged.",
            name,
            info.pipeline_step_name,
            ", ".join(sorted(step_run.outputs)) or "none",
        )
        account.skipped += 1
        return
    artifact = versions[0]
    ids = models.ModelIds(str(info.run_id), str(info.step_run_id), str(artifact.id))
    try:
        registered = models.log_model(
            publisher, target.run_id, artifact.load(), settings.registered_model_name, ids
        )
    except models.UnsaveableModel as error:
        logger.warning("Output %r is not logged as an MLflow model (log_model): %s.", name, error)
        account.skipped += 1
        return
    except Exception as error:  # counted like an upload that did not arrive
        logger.warning(
            "Could not log output %r as an MLflow model (log_model): %s",
            name,
            redact_credentials(str(error)),
        )
        account.not_delivered.append(f"{models.MODEL_NAME} ({name})")
        return
    account.delivered += 1
    if registered is not None:
        _record_on_model(info, step_run, target.model_link, registered)


def _record_on_model(
    info: StepFacts,
    step_run: "StepRunResponse",
    model_link: Callable[[str, str], str],
    registered: Any,
) -> None:
    """Give the pipeline's ZenML Model version, if any, the registered version's link."""
    from zenml.client import Client
    from zenml.enums import MetadataResourceTypes
    from zenml.metadata.metadata_types import Uri
    from zenml.models import RunMetadataResource

    zenml = Client()
    model_version = (
        step_run.model_version or zenml.zen_store.get_run(info.run_id, hydrate=True).model_version
    )
    if model_version is None:
        return
    link = model_link(registered.name, str(registered.version))
    zenml.create_run_metadata(
        metadata={
            metadata.REGISTERED_MODEL_KEY: registered.name,
            metadata.MODEL_VERSION_KEY: str(registered.version),
            metadata.MODEL_VERSION_URL_KEY: Uri(link),
        },
        resources=[
            RunMetadataResource(id=model_version.id, type=MetadataResourceTypes.MODEL_VERSION)
        ],
    )


def after_step(
    connection: "Connection",
    step: "StepRun",
    info: "StepRunInfo",
    step_run: "StepRunResponse",
    settings: "MLflowPlusSettings",
    component_id: "UUID",
    deliveries: Deliveries,
    noise: "RequestNoise",
) -> None:
    """Send what the settings ask for of a step ZenML published; record trouble on the step."""
    if wanted(settings):
        if step.artifact_uri is not None:
            deliveries.runs.remember(
                connection.uri, step.run_id, step.artifact_uri, step.parent.experiment_id
            )
        target = Target(step.run_id, connection.model_link, step.metadata())
        _send(connection, info, step_run, settings, target, component_id, deliveries, noise)


def _send(
    connection: "Connection",
    facts: StepFacts,
    step_run: "StepRunResponse",
    settings: "MLflowPlusSettings",
    target: Target,
    component_id: "UUID",
    deliveries: Deliveries,
    noise: "RequestNoise",
) -> None:
    """Deliver the step's outputs, lineage and model; record the account if any went amiss."""
    with explained(connection, noise), deliveries.counted():
        account = deliver(
            publisher(connection, deliveries.runs),
            facts,
            step_run,
            settings,
            target,
            deliveries,
            noise,
        )
    if account:
        metadata.record_step(component_id, facts.step_run_id, account)


def after_delivery(
    connection: "Connection",
    step_run_id: str,
    run_id: str,
    run_metadata: dict[str, "MetadataType"],
    settings: "MLflowPlusSettings",
    component_id: "UUID",
    deliveries: Deliveries,
    noise: "RequestNoise",
) -> None:
    """Send what the settings ask for of a step whose spool was just delivered."""
    from uuid import UUID

    from zenml.client import Client

    if not wanted(settings):
        return
    store = Client().zen_store
    step_run = store.get_run_step(UUID(step_run_id))
    if not step_run.status.is_successful:
        return
    run = store.get_run(step_run.pipeline_run_id)
    facts = PublishedStep(run.id, step_run.id, step_run.name, run.snapshot)
    target = Target(run_id, connection.model_link, run_metadata)
    if settings.lineage:  # the outputs were stored long ago, without the link
        _record_on_artifacts(step_run, run_metadata)
    _send(connection, facts, step_run, settings, target, component_id, deliveries, noise)
