"""The `mlflow_plus` experiment tracker: ZenML's step hooks, as glue over the layers below.

runs/ decides and opens a step's MLflow runs, delivery/ gets what the step logs there (or into
the spool), watcher/ settles statuses and sends outputs once ZenML has the final word; the
process state they share is the runtime's.
"""

import os
import threading
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from zenml.artifact_stores import LocalArtifactStore
from zenml.client import Client
from zenml.logger import get_logger
from zenml.stack import StackValidator
from zenml.utils import settings_utils

from tracker_flavor.builtin_api import BuiltinTrackerApi
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.delivery import catchup, offline, queue
from tracker_flavor.mlflow.connection import Connection, is_down, unprotected
from tracker_flavor.mlflow.errors import TrackingServerError
from tracker_flavor.runs import metadata, plan, steps
from tracker_flavor.runs.outcome import (
    launched_before_another,
    pipeline_outcome,
    snapshot_in_order,
)
from tracker_flavor.runtime import runtime
from tracker_flavor.watcher import after_step

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from zenml.config.base_settings import BaseSettings
    from zenml.config.step_run_info import StepRunInfo
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import StepRunResponse

logger = get_logger(__name__)


class MLflowPlusExperimentTracker(BuiltinTrackerApi):
    """Logs each ZenML pipeline run into one MLflow parent run, optionally a child per step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._steps: dict[UUID, steps.StepRun] = {}
        self._spools: dict[UUID, offline.StepSpool] = {}
        self._steps_lock = threading.Lock()

    @property
    def settings_class(self) -> type[MLflowPlusSettings]:
        """Return the settings class."""
        return MLflowPlusSettings

    @property
    def validator(self) -> StackValidator | None:
        """Require a local artifact store when the embedded store will be used."""
        if self.config.is_local and not self.config.tracking_uri:
            return StackValidator(
                custom_validation_function=lambda stack: (
                    isinstance(stack.artifact_store, LocalArtifactStore)
                    or bool(os.environ.get("MLFLOW_TRACKING_URI")),
                    "the mlflow_plus tracker without tracking_uri keeps its embedded MLflow store "
                    "in the artifact store, which must then be local: add a local artifact store "
                    "to the stack, or set tracking_uri on the tracker.",
                )
            )
        return None

    def get_settings(self, container: Any) -> "BaseSettings":
        """Return the step's settings: component-level values overlaid with the step's own."""
        key = settings_utils.get_stack_component_name_setting_key(self)
        legacy_key = settings_utils.get_stack_component_setting_key(self)
        if hasattr(container, "pipeline_configuration"):
            all_settings = container.pipeline_configuration.settings
        else:
            all_settings = container.config.settings
        values = self.config.settings_values()
        given = all_settings.get(key) or all_settings.get(legacy_key)
        if given is not None:
            values.update(given.model_dump(exclude_unset=True))
        return MLflowPlusSettings.model_validate(values)

    def _warn_once(self, connection: Connection) -> None:
        """Warn, once per process and URI, about connections that are not protected."""
        for kind, message in unprotected(connection).items():
            if runtime.once.first(connection.uri, kind):
                logger.warning(message)

    # Step hooks

    def prepare_step_run(self, info: "StepRunInfo") -> None:
        """Resolve the pipeline run's parent run, open the step's run and make it active."""
        runtime.install()  # again after a reset (tests), for a tracker ZenML kept
        runtime.watcher.running(info.run_id)
        process = runtime.mlflow
        process.deferred.raise_deferred(info.run_id)
        settings = cast(MLflowPlusSettings, self.get_settings(info))
        spooling = settings.on_tracking_outage == "spool"
        connection = self.connection()
        self._warn_once(connection)
        if connection.unity_catalog:
            settings.check_unity_catalog_name()
        # Held for the whole step (user code logs through it); released in cleanup_step_run.
        process.environment.enter(connection, queue.environment(settings.async_logging))
        process.threads.enter()
        autologging = False
        try:
            step_plan = plan.step_plan(
                settings, plan.facts_of_step(info, settings.nested), plan.tracking_user()
            )
            step_spool = offline.StepSpool.of(connection, info, runtime.held) if spooling else None
            if step_spool is not None and after_step.wanted(settings):
                step_spool.publish = settings.model_dump(mode="json")
            step = offline.start(
                connection, self.config, self.id, step_plan, step_spool, runtime.runs,
                self.publisher_for(connection),
            )  # fmt: skip
            process.autologging.enter(settings.autolog)
            autologging = True
            # Only now: a batching-thread request while autolog() imports would deadlock.
            if settings.async_logging:
                grace = settings.outage_grace_seconds
                wait = step_spool.final_wait(grace) if step_spool is not None else None
                runtime.ledgers.open(
                    info.step_run_id, connection.uri, step.run_id, step_plan.queued_params, wait,
                    step_name=info.pipeline_step_name,
                )  # fmt: skip
            if (sampling := step_plan.sampling) and not (step_spool and step_spool.offline):
                process.system_metrics.start(
                    info.step_run_id, step.run_id, connection.uri,
                    sampling.interval_seconds, sampling.node,
                )  # fmt: skip
        except BaseException:
            process.system_metrics.stop(info.step_run_id)
            runtime.ledgers.close(info.step_run_id)
            if autologging:
                process.autologging.leave()
            process.threads.end()
            process.threads.leave()
            process.environment.leave(connection)
            raise
        with self._steps_lock:
            self._steps[info.step_run_id] = step
            if step_spool is not None:
                self._spools[info.step_run_id] = step_spool

    def get_step_run_metadata(self, info: "StepRunInfo") -> dict[str, "MetadataType"]:
        """Return the step's run link and ids, recorded as ZenML step metadata."""
        # Its last samples go into the ledger counted here.
        runtime.mlflow.system_metrics.stop(info.step_run_id)
        step = self._steps.get(info.step_run_id)
        if step is None:
            return {}
        settings = cast(MLflowPlusSettings, self.get_settings(info))
        after_step.label_outputs(settings, info.config.outputs, step.metadata())
        step_spool = self._spools.get(info.step_run_id)
        if step_spool is None:
            return metadata.grouped(
                {**step.metadata(), **runtime.ledgers.metadata(info.step_run_id)}
            )
        step_spool.spool_values(runtime.ledgers.spill(info.step_run_id))
        ledger = runtime.ledgers.metadata(info.step_run_id)
        return metadata.grouped(step_spool.step_metadata(step, ledger))

    def cleanup_step_run(self, info: "StepRunInfo", step_failed: bool) -> None:
        """End the step's runs, settle the parent's status and restore the process."""
        with self._steps_lock:
            step = self._steps.pop(info.step_run_id, None)
            step_spool = self._spools.pop(info.step_run_id, None)
        if step is None:
            return
        try:
            if step_spool is not None:  # what get_step_run_metadata did not see (it failed?)
                step_spool.spool_values(runtime.ledgers.spill(info.step_run_id))
            with runtime.ledgers.delivered(info.step_run_id) as lost:
                failed = step_failed or lost
                if step_spool is not None and step_spool.offline:
                    self._end_offline(info, step, failed, step_spool)
                    return
                try:
                    with steps.client(step.connection, runtime.mlflow, self.config) as mlflow:
                        steps.end(mlflow, step, failed, runtime.runs)
                        self._settle(mlflow, info, step, failed)
                except TrackingServerError:
                    if step_spool is None or not is_down(step.connection):
                        raise
                    self._end_offline(info, step, failed, step_spool)
        finally:
            runtime.mlflow.autologging.leave()
            runtime.mlflow.threads.end()
            runtime.mlflow.threads.leave()
            runtime.mlflow.environment.leave(step.connection)

    def _end_offline(
        self, info: "StepRunInfo", step: steps.StepRun, failed: bool, step_spool: offline.StepSpool
    ) -> None:
        """Journal the step's end; once the run is over, deliver the spool if the server is back."""
        offline.end(info, step, failed, step_spool, runtime.mlflow.seam)
        was_offline, run_id = step_spool.offline, info.run_id
        config, component_id = self.config, self.id
        publish = self.publisher_for(step.connection)
        runtime.watcher.watch(
            run_id,
            lambda final: offline.after_run(
                config,
                component_id,
                step,
                was_offline,
                run_id,
                final,
                runtime.runs,
                runtime.held,
                publish,
            ),  # fmt: skip
        )

    def publisher_for(self, connection: "Connection") -> catchup.Publish:
        """Return what sends a step's outputs, reports and lineage once its spool is delivered."""
        component_id = self.id

        def publish(
            step_run_id: str,
            run_id: str,
            run_metadata: dict[str, "MetadataType"],
            settings: dict[str, Any],
        ) -> None:
            # MLflow's artifact repositories of Databricks ask for the credentials themselves.
            with runtime.mlflow.credentials.holding(connection):
                after_step.after_delivery(
                    connection, step_run_id, run_id, run_metadata,
                    MLflowPlusSettings.model_validate(settings), component_id,
                    runtime.deliveries, runtime.mlflow.noise,
                )  # fmt: skip

        return publish

    def _settle(
        self, mlflow: "MlflowClient", info: "StepRunInfo", step: steps.StepRun, failed: bool
    ) -> None:
        """Settle the parent if this step decides the pipeline's outcome, else watch ZenML."""
        outcome, failed_step = pipeline_outcome(
            info.run_id, info.snapshot, info.pipeline_step_name, failed,
            snapshot_in_order,
        )  # fmt: skip
        run_id = info.run_id
        if not failed:
            # ZenML saves the outputs after this hook: the step may still fail.
            runtime.watcher.watch_step(
                info.step_run_id, lambda published: self._after_step(step, info, published)
            )
        if outcome == "RUNNING":
            runtime.watcher.watch(
                run_id,
                lambda final: steps.settle_after_run(
                    self.connection(step.connection), step, run_id, final, runtime.runs
                ),
            )
            return
        runtime.runs.statuses.settle(mlflow, step.key, outcome, failed_step)

    def _after_step(
        self, step: steps.StepRun, info: "StepRunInfo", published: "StepRunResponse"
    ) -> None:
        """Once ZenML published the step: send its outputs, or fail its runs if it failed."""
        connection = self.connection(step.connection)
        final = published.status
        steps.settle_after_step(connection, step, info.pipeline_step_name, final, runtime.runs)
        if not final.is_successful:
            return
        settings = cast(MLflowPlusSettings, self.get_settings(info))

        def send() -> None:
            with runtime.mlflow.credentials.holding(connection):
                after_step.after_step(
                    connection, step, info, published, settings, self.id, runtime.deliveries,
                    runtime.mlflow.noise,
                )  # fmt: skip

        name = info.pipeline_step_name
        if after_step.handed_off(
            settings, runtime.watcher.launched_here()
        ) and launched_before_another(info.snapshot, name, snapshot_in_order):
            # Sent while ZenML launches the next step, which waits for it before it returns.
            runtime.deliveries.hand_off(send, runtime.mlflow.autologging.lock)
        else:
            send()

    def get_pipeline_run_metadata(self, run_id: UUID) -> dict[str, "MetadataType"]:
        """Create the parent run when ZenML creates the pipeline run, and return its link."""
        runtime.install()
        run = Client().get_pipeline_run(run_id)
        snapshot = run.snapshot
        if snapshot is None or not any(
            step.config.uses_experiment_tracker(self.name)
            for step in snapshot.step_configurations.values()
        ):
            return {}
        settings = cast(MLflowPlusSettings, self.get_settings(snapshot))
        connection = self.connection()
        if settings.on_tracking_outage == "spool" and is_down(connection):
            return {}  # the steps spool; the link is added when the spool is delivered
        process = runtime.mlflow
        process.environment.enter(connection)
        try:
            spec = plan.parent_spec(settings, plan.facts_of_run(run), plan.tracking_user())
            with steps.client(connection, process, self.config) as mlflow:
                records = metadata.ZenMLRecords(connection, self.id)
                parent = steps.resolve_parent(mlflow, connection, spec, records, runtime.runs)
        except TrackingServerError as error:
            process.deferred.defer(run_id, error, connection.limits.bound_seconds())
            return {}
        finally:
            process.environment.leave(connection)
        return metadata.parent_metadata(connection, parent)
