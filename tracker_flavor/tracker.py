"""The `mlflow_plus` experiment tracker: ZenML step hooks that drive MLflow runs."""

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from zenml.artifact_stores import LocalArtifactStore
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.enums import MetadataResourceTypes
from zenml.experiment_trackers.base_experiment_tracker import BaseExperimentTracker
from zenml.logger import get_logger
from zenml.metadata.metadata_types import Uri
from zenml.models import RunMetadataResource
from zenml.stack import StackValidator
from zenml.utils import settings_utils

from tracker_flavor import active_run, runs, tags
from tracker_flavor.config import MLflowPlusConfig
from tracker_flavor.embedded import embedded_artifact_location, embedded_tracking_uri
from tracker_flavor.environment import process_environment
from tracker_flavor.finalizer import run_finalizer
from tracker_flavor.params import step_params
from tracker_flavor.settings import MLflowPlusSettings
from tracker_flavor.status import pipeline_outcome
from tracker_flavor.uris import (
    DEFAULT_UI_URL,
    is_databricks_uri,
    is_http_uri,
    normalize_host,
    run_url,
    strip_credentials,
)

if TYPE_CHECKING:
    from zenml.config.base_settings import BaseSettings
    from zenml.config.step_run_info import StepRunInfo
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import PipelineRunResponse

logger = get_logger(__name__)

PARENT_RUN_ID_KEY = "mlflow_parent_run_id"
EXPERIMENT_ID_KEY = "mlflow_experiment_id"
RUN_ID_KEY = "mlflow_run_id"
TRACKING_URI_KEY = "mlflow_tracking_uri"


@dataclass(frozen=True)
class StepRun:
    """What the tracker knows about one step attempt between its hooks."""

    tracking_uri: str
    experiment_id: str
    parent_id: str
    run_id: str
    nested: bool
    autolog: bool
    ui_base: str
    databricks: bool

    def link(self, run_id: str) -> str:
        """Return the UI deep link of one of this step's runs."""
        return run_url(self.ui_base, self.experiment_id, run_id, databricks=self.databricks)


class MLflowPlusExperimentTracker(BaseExperimentTracker):
    """Logs each ZenML pipeline run into one MLflow parent run, optionally a child per step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._steps: dict[UUID, StepRun] = {}
        self._steps_lock = threading.Lock()
        self._parent_status: dict[tuple[str, str], str] = {}

    @property
    def config(self) -> MLflowPlusConfig:
        """Return the component's configuration."""
        return cast(MLflowPlusConfig, self._config)

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

    def tracking_uri(self) -> str:
        """Return the tracking URI: config, else MLFLOW_TRACKING_URI, else the embedded store."""
        return self._store()[0]

    def _store(self) -> tuple[str, str | None]:
        """Return the tracking URI and, for the embedded store, the artifact root of experiments."""
        if self.config.tracking_uri:
            return self.config.tracking_uri, None
        if from_env := os.environ.get("MLFLOW_TRACKING_URI"):
            return from_env, None
        path = Client().active_stack.artifact_store.path
        return embedded_tracking_uri(path), embedded_artifact_location(path)

    def _variables(self, uri: str) -> dict[str, str]:
        """Return the MLflow/Databricks environment variables that carry the credentials."""
        config = self.config
        variables: dict[str, str] = {}
        if is_databricks_uri(uri):
            variables["DATABRICKS_HOST"] = normalize_host(config.databricks_host or "")
            variables["MLFLOW_REGISTRY_URI"] = (
                "databricks-uc" if config.enable_unity_catalog else "databricks"
            )
            if config.tracking_token:
                variables["DATABRICKS_TOKEN"] = config.tracking_token
            if config.tracking_username and config.tracking_password:
                variables["DATABRICKS_USERNAME"] = config.tracking_username
                variables["DATABRICKS_PASSWORD"] = config.tracking_password
            if config.databricks_client_id and config.databricks_client_secret:
                variables["DATABRICKS_CLIENT_ID"] = config.databricks_client_id
                variables["DATABRICKS_CLIENT_SECRET"] = config.databricks_client_secret
                variables["DATABRICKS_AUTH_TYPE"] = "oauth-m2m"
                variables["MLFLOW_ENABLE_DB_SDK"] = "true"
        else:
            if config.tracking_token:
                variables["MLFLOW_TRACKING_TOKEN"] = config.tracking_token
            if config.tracking_username and config.tracking_password:
                variables["MLFLOW_TRACKING_USERNAME"] = config.tracking_username
                variables["MLFLOW_TRACKING_PASSWORD"] = config.tracking_password
        if config.tracking_insecure_tls:
            variables["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
        return variables

    def _ui_base(self, uri: str) -> str:
        """Return the base URL that run links start with."""
        if self.config.ui_url:
            return self.config.ui_url
        if is_databricks_uri(uri):
            return normalize_host(self.config.databricks_host or "")
        if is_http_uri(uri):
            return strip_credentials(uri)
        return DEFAULT_UI_URL

    # Step hooks

    def prepare_step_run(self, info: "StepRunInfo") -> None:
        """Resolve the pipeline run's parent run, open the step's run and make it active."""
        settings = cast(MLflowPlusSettings, self.get_settings(info))
        uri, artifact_location = self._store()
        process_environment.enter(uri, self._variables(uri))
        try:
            step = self._start_step(info, settings, uri, artifact_location)
            if settings.autolog:
                import mlflow

                mlflow.autolog(silent=True)
        except BaseException:
            process_environment.leave()
            raise
        with self._steps_lock:
            self._steps[info.step_run_id] = step

    def _start_step(
        self,
        info: "StepRunInfo",
        settings: MLflowPlusSettings,
        uri: str,
        artifact_location: str | None,
    ) -> StepRun:
        """Open the MLflow runs of a step attempt and push the one it logs into."""
        client = MlflowClient(tracking_uri=uri)
        parent_id, exp_id, parent_run = self._parent_run(
            client, uri, artifact_location, info, settings
        )
        step_name = info.pipeline_step_name
        step_tags = {
            **settings.tags,
            tags.PIPELINE_RUN_ID: str(info.run_id),
            tags.STEP_NAME: step_name,
            tags.STEP_RUN_ID: str(info.step_run_id),
            tags.ATTEMPT: str(info.step_run.version),
            tags.ZENML_VERSION: _zenml_version(),
        }
        params: dict[str, str] = {}
        if settings.log_step_parameters:
            params = step_params(
                info.config.parameters, prefix="" if settings.nested else step_name
            )
        if settings.nested:
            run = runs.create_step_run(client, exp_id, parent_id, step_name, step_tags)
            self._log(client, run.info.run_id, {}, params)
            self._log(client, parent_id, {tags.LAST_STEP: step_name}, {})
        else:
            self._log(client, parent_id, {tags.LAST_STEP: step_name}, params)
            run = parent_run or runs.placeholder_run(parent_id, exp_id, settings.run_name or "")
        active_run.push(run)
        return StepRun(
            tracking_uri=uri,
            experiment_id=exp_id,
            parent_id=parent_id,
            run_id=run.info.run_id,
            nested=settings.nested,
            autolog=settings.autolog,
            ui_base=self._ui_base(uri),
            databricks=is_databricks_uri(uri),
        )

    def _parent_run(
        self,
        client: MlflowClient,
        uri: str,
        artifact_location: str | None,
        info: "StepRunInfo | PipelineRunResponse",
        settings: MLflowPlusSettings,
    ) -> tuple[str, str, Any]:
        """Return (parent run id, experiment id, parent run if fetched) for a ZenML run."""
        from zenml.models import PipelineRunResponse

        if isinstance(info, PipelineRunResponse):
            pipeline_run_id, zenml_run_name = info.id, info.name
            snapshot = info.snapshot
            pipeline_name = snapshot.pipeline_configuration.name if snapshot else ""
        else:
            pipeline_run_id, zenml_run_name = info.run_id, info.run_name
            snapshot = info.snapshot
            pipeline_name = info.pipeline.name
        experiment_name = settings.experiment_name or pipeline_name
        exp_id = runs.experiment_id(client, uri, experiment_name, artifact_location)
        recorded = None
        if runs.cached_parent_id(uri, str(pipeline_run_id)) is None:
            recorded = self._recorded_parent(pipeline_run_id, exp_id, uri)
        run_tags = {
            **settings.tags,
            tags.PIPELINE_RUN_ID: str(pipeline_run_id),
            tags.PIPELINE_NAME: pipeline_name,
            tags.RUN_NAME: zenml_run_name,
            tags.STACK: snapshot.stack.name if snapshot and snapshot.stack else "",
            tags.ZENML_VERSION: _zenml_version(),
        }
        parent_id, parent_run, created = runs.resolve_parent_run(
            client,
            uri,
            exp_id,
            str(pipeline_run_id),
            settings.run_name or zenml_run_name,
            run_tags,
            recorded,
        )
        key = (uri, parent_id)
        if parent_run is not None:
            self._parent_status[key] = parent_run.info.status
        if self._parent_status.get(key) == "FINISHED":
            # The ZenML run is running again (resumed or re-run): so is its parent.
            client.update_run(parent_id, status="RUNNING")
            self._parent_status[key] = "RUNNING"
        if (
            recorded is None
            and parent_run is not None
            and not isinstance(info, PipelineRunResponse)
        ):
            self._record_parent(pipeline_run_id, uri, exp_id, parent_id)
        return parent_id, exp_id, parent_run

    def _recorded_parent(self, pipeline_run_id: UUID, exp_id: str, uri: str) -> str | None:
        """Return the parent run id recorded in ZenML for this run, experiment and store."""
        metadata = Client().zen_store.get_run(pipeline_run_id, hydrate=True).run_metadata
        if (
            metadata.get(EXPERIMENT_ID_KEY) == exp_id
            and metadata.get(TRACKING_URI_KEY) == strip_credentials(uri)
            and isinstance(parent := metadata.get(PARENT_RUN_ID_KEY), str)
        ):
            return parent
        return None

    def _parent_metadata(self, uri: str, exp_id: str, parent_id: str) -> dict[str, "MetadataType"]:
        """Return the pipeline-run metadata that points at the parent run."""
        link = run_url(self._ui_base(uri), exp_id, parent_id, databricks=is_databricks_uri(uri))
        return {
            METADATA_EXPERIMENT_TRACKER_URL: Uri(link),
            PARENT_RUN_ID_KEY: parent_id,
            EXPERIMENT_ID_KEY: exp_id,
            TRACKING_URI_KEY: strip_credentials(uri),
        }

    def _record_parent(self, pipeline_run_id: UUID, uri: str, exp_id: str, parent_id: str) -> None:
        """Record the parent run in ZenML so later steps and processes skip the search."""
        Client().create_run_metadata(
            metadata=self._parent_metadata(uri, exp_id, parent_id),
            resources=[
                RunMetadataResource(id=pipeline_run_id, type=MetadataResourceTypes.PIPELINE_RUN)
            ],
            stack_component_id=self.id,
        )

    @staticmethod
    def _log(
        client: MlflowClient, run_id: str, run_tags: dict[str, str], params: dict[str, str]
    ) -> None:
        """Log tags and params in as few requests as possible; a param conflict only warns."""
        from mlflow.entities import Param

        if not run_tags and not params:
            return
        tag_list = [RunTag(key, value) for key, value in run_tags.items()]
        param_list = [Param(key, value) for key, value in params.items()]
        try:
            for start in range(0, max(len(param_list), 1), 100):
                client.log_batch(
                    run_id,
                    params=param_list[start : start + 100],
                    tags=tag_list if start == 0 else [],
                )
        except MlflowException as error:
            if error.error_code != "INVALID_PARAMETER_VALUE" or not param_list:
                raise
            logger.warning(
                "Step parameters were not logged to MLflow run %s: %s", run_id, error.message
            )
            if tag_list:
                client.log_batch(run_id, tags=tag_list)

    def get_step_run_metadata(self, info: "StepRunInfo") -> dict[str, "MetadataType"]:
        """Return the step's run link and ids, recorded as ZenML step metadata."""
        step = self._steps.get(info.step_run_id)
        if step is None:
            return {}
        return {
            METADATA_EXPERIMENT_TRACKER_URL: Uri(step.link(step.run_id)),
            RUN_ID_KEY: step.run_id,
            EXPERIMENT_ID_KEY: step.experiment_id,
            PARENT_RUN_ID_KEY: step.parent_id,
            TRACKING_URI_KEY: strip_credentials(step.tracking_uri),
        }

    def cleanup_step_run(self, info: "StepRunInfo", step_failed: bool) -> None:
        """End the step's runs, settle the parent's status and restore the process."""
        with self._steps_lock:
            step = self._steps.pop(info.step_run_id, None)
        if step is None:
            return
        try:
            self._end_step(info, step, step_failed)
        finally:
            if step.autolog:
                import mlflow

                mlflow.autolog(disable=True, silent=True)
            process_environment.leave()

    def _end_step(self, info: "StepRunInfo", step: StepRun, step_failed: bool) -> None:
        """Terminate the step's runs and update the parent when the pipeline's outcome changed."""
        client = MlflowClient(tracking_uri=step.tracking_uri)
        status = "FAILED" if step_failed else "FINISHED"
        for left_open in reversed(active_run.pop_until(step.run_id)):
            client.set_terminated(left_open, status)
        if step.nested:
            client.set_terminated(step.run_id, status)
        outcome, failed_step = pipeline_outcome(
            info.run_id, info.snapshot, info.pipeline_step_name, step_failed
        )
        if outcome == "RUNNING":
            variables = self._variables(step.tracking_uri)
            run_finalizer.watch(
                info.run_id,
                lambda succeeded: self._settle_after_run(step, variables, info.run_id, succeeded),
            )
            return
        self._settle_parent(client, step, outcome, failed_step)

    def _settle_parent(
        self, client: MlflowClient, step: StepRun, outcome: str, failed_step: str | None
    ) -> None:
        """Give the parent run its final status, unless this process already gave it."""
        key = (step.tracking_uri, step.parent_id)
        if self._parent_status.get(key) == outcome:
            return
        if failed_step:
            client.set_tag(step.parent_id, tags.FAILED_STEP, failed_step)
        client.set_terminated(step.parent_id, outcome)
        self._parent_status[key] = outcome

    def _settle_after_run(
        self, step: StepRun, variables: dict[str, str], run_id: UUID, succeeded: bool
    ) -> None:
        """Settle the parent run after ZenML finished the pipeline run (see finalizer)."""
        failed_step = None
        if not succeeded:
            run = Client().zen_store.get_run(run_id, hydrate=True)
            failed = sorted(name for name, s in run.steps.items() if s.status == "failed")
            failed_step = failed[0] if failed else None
        process_environment.enter(step.tracking_uri, variables)
        try:
            client = MlflowClient(tracking_uri=step.tracking_uri)
            self._settle_parent(client, step, "FINISHED" if succeeded else "FAILED", failed_step)
        finally:
            process_environment.leave()

    def get_pipeline_run_metadata(self, run_id: UUID) -> dict[str, "MetadataType"]:
        """Create the parent run when ZenML creates the pipeline run, and return its link."""
        run = Client().get_pipeline_run(run_id)
        snapshot = run.snapshot
        if snapshot is None or not any(
            step.config.uses_experiment_tracker(self.name)
            for step in snapshot.step_configurations.values()
        ):
            return {}
        settings = cast(MLflowPlusSettings, self.get_settings(snapshot))
        uri, artifact_location = self._store()
        process_environment.enter(uri, self._variables(uri))
        try:
            client = MlflowClient(tracking_uri=uri)
            parent_id, exp_id, _ = self._parent_run(client, uri, artifact_location, run, settings)
        finally:
            process_environment.leave()
        return self._parent_metadata(uri, exp_id, parent_id)


def _zenml_version() -> str:
    """Return the running ZenML version (the built-in flavor's marker tag value)."""
    import zenml

    return str(zenml.__version__)
