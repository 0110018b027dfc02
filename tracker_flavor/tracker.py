"""The `mlflow_plus` experiment tracker: ZenML step hooks that drive MLflow runs."""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit
from uuid import UUID

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException
from zenml.artifact_stores import LocalArtifactStore
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.enums import ExecutionStatus, MetadataResourceTypes
from zenml.experiment_trackers.base_experiment_tracker import BaseExperimentTracker
from zenml.logger import get_logger
from zenml.metadata.metadata_types import Uri
from zenml.models import RunMetadataResource
from zenml.stack import StackValidator
from zenml.utils import settings_utils

from tracker_flavor import active_run, batching, errors, quiet, runs, secrets, tags
from tracker_flavor.config import MLflowPlusConfig
from tracker_flavor.detached import RunSettler, detached_client
from tracker_flavor.embedded import embedded_artifact_location, embedded_tracking_uri
from tracker_flavor.environment import process_environment
from tracker_flavor.errors import TrackingServerError, explain
from tracker_flavor.finalizer import run_finalizer
from tracker_flavor.imports import AUTOLOG_LOCK
from tracker_flavor.outcome import first_failed_step, pipeline_outcome
from tracker_flavor.params import step_params
from tracker_flavor.settings import MLflowPlusSettings
from tracker_flavor.timeouts import RequestLimits
from tracker_flavor.uris import (
    DEFAULT_UI_URL,
    is_databricks_uri,
    is_http_uri,
    is_remote_uri,
    normalize_host,
    redact_credentials,
    run_url,
    strip_credentials,
    uri_scheme,
)

if TYPE_CHECKING:
    from zenml.config.base_settings import BaseSettings
    from zenml.config.step_run_info import StepRunInfo
    from zenml.metadata.metadata_types import MetadataType
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse

logger = get_logger(__name__)

PARENT_RUN_ID_KEY = "mlflow_parent_run_id"
EXPERIMENT_ID_KEY = "mlflow_experiment_id"
RUN_ID_KEY = "mlflow_run_id"
TRACKING_URI_KEY = "mlflow_tracking_uri"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_warned: set[tuple[str, str]] = set()


def _first(uri: str, warning: str) -> bool:
    """Tell whether this process has not yet given this warning for this URI (and now has)."""
    if (uri, warning) in _warned:
        return False
    _warned.add((uri, warning))
    return True


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

    def _value(self, field: str) -> Any:
        """Return a config value, resolving a secret reference with a clear error."""
        return secrets.resolve(self.config, field)

    def tracking_uri(self) -> str:
        """Return the tracking URI: config, else MLFLOW_TRACKING_URI, else the embedded store."""
        return self.tracking_store()[0]

    def tracking_store(self) -> tuple[str, str | None]:
        """Return the tracking URI and, for the embedded store, the artifact root of experiments."""
        if configured := self._value("tracking_uri"):
            return str(configured), None
        if from_env := os.environ.get("MLFLOW_TRACKING_URI"):
            return from_env, None
        path = Client().active_stack.artifact_store.path
        return embedded_tracking_uri(path), embedded_artifact_location(path)

    def client_variables(self, uri: str) -> dict[str, str]:
        """Return the MLflow/Databricks environment variables: credentials, TLS, time limits."""
        config = self.config
        value = self._value
        variables = {
            **RequestLimits.of(config).variables(),
            # Else every set_terminated fetches the run again only to print its URL.
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        }
        token, username, password = (
            value("tracking_token"),
            value("tracking_username"),
            value("tracking_password"),
        )
        if is_databricks_uri(uri):
            variables["DATABRICKS_HOST"] = normalize_host(value("databricks_host") or "")
            variables["MLFLOW_REGISTRY_URI"] = (
                "databricks-uc" if config.enable_unity_catalog else "databricks"
            )
            if token:
                variables["DATABRICKS_TOKEN"] = token
            if username and password:
                variables["DATABRICKS_USERNAME"] = username
                variables["DATABRICKS_PASSWORD"] = password
            client_id, client_secret = (
                value("databricks_client_id"),
                value("databricks_client_secret"),
            )
            if client_id and client_secret:
                variables["DATABRICKS_CLIENT_ID"] = client_id
                variables["DATABRICKS_CLIENT_SECRET"] = client_secret
                variables["DATABRICKS_AUTH_TYPE"] = "oauth-m2m"
                variables["MLFLOW_ENABLE_DB_SDK"] = "true"
        else:
            if token:
                variables["MLFLOW_TRACKING_TOKEN"] = token
            if username and password:
                variables["MLFLOW_TRACKING_USERNAME"] = username
                variables["MLFLOW_TRACKING_PASSWORD"] = password
        if uri_scheme(uri) == "file":
            # MLflow 3 refuses its file store unless asked for it; a file: URI is that request.
            variables["MLFLOW_ALLOW_FILE_STORE"] = "true"
        if config.tracking_insecure_tls:
            variables["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
            quiet.skip_unverified_warnings(uri)  # `_warn_once` warns instead, once
        for field, name in (
            ("tracking_ca_bundle", "MLFLOW_TRACKING_SERVER_CERT_PATH"),
            ("tracking_client_cert", "MLFLOW_TRACKING_CLIENT_CERT_PATH"),
        ):
            if path := value(field):
                if not os.path.isfile(path):
                    raise FileNotFoundError(
                        f"{field} {path!r} is not a file on this machine: mount the PEM file "
                        f"where steps run, or correct {field}."
                    )
                variables[name] = path
        return variables

    def _ui_base(self, uri: str) -> str:
        """Return the base URL that run links start with."""
        if ui_url := self._value("ui_url"):
            return str(ui_url)
        if is_databricks_uri(uri):
            return normalize_host(self._value("databricks_host") or "")
        if is_http_uri(uri):
            return strip_credentials(uri)
        return DEFAULT_UI_URL

    def _experiment_name(self, name: str, uri: str) -> str:
        """Return the experiment name; on Databricks, a workspace path."""
        if is_databricks_uri(uri) and not name.startswith("/"):
            return f"{self.config.databricks_experiment_dir.rstrip('/')}/{name}"
        return name

    def _warn_once(self, uri: str) -> None:
        """Warn, once per process and URI, about connections that are not protected."""
        parts = urlsplit(uri)
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS and _first(uri, "http"):
            logger.warning(
                "MLflow tracking server %s is reached over plain http: credentials and data "
                "travel unencrypted. Use https:// where the network is not trusted.",
                strip_credentials(uri),
            )
        if self.config.tracking_insecure_tls and is_remote_uri(uri) and _first(uri, "tls"):
            logger.warning(
                "TLS certificate verification of %s is off (tracking_insecure_tls=True).",
                strip_credentials(uri),
            )

    @contextmanager
    def _explaining(self, uri: str) -> Iterator[MlflowClient]:
        """Yield a client for `uri`; turn a server failure into a one-line TrackingServerError."""
        with self._explained(uri):
            yield MlflowClient(tracking_uri=uri)

    @contextmanager
    def _explained(self, uri: str) -> Iterator[None]:
        """Turn a failure of the server at `uri` into a one-line TrackingServerError."""
        try:
            with quiet.tracker_requests():
                yield
        except Exception as error:
            if message := explain(error, uri, self.config, RequestLimits.of(self.config)):
                raise TrackingServerError(message) from None
            if (text := str(error)) != (clean := redact_credentials(text)):
                raise TrackingServerError(clean) from None  # MLflow's message names the URI
            raise

    @contextmanager
    def connected(self, uri: str, variables: dict[str, str]) -> Iterator[MlflowClient]:
        """Yield a client for `uri` with its environment applied; explain server failures."""
        process_environment.enter(uri, variables)
        try:
            with self._explaining(uri) as client:
                yield client
        finally:
            process_environment.leave()

    # Step hooks

    def prepare_step_run(self, info: "StepRunInfo") -> None:
        """Resolve the pipeline run's parent run, open the step's run and make it active."""
        errors.raise_deferred(info.run_id)
        settings = cast(MLflowPlusSettings, self.get_settings(info))
        uri, artifact_location = self.tracking_store()
        variables = self.client_variables(uri)
        self._warn_once(uri)
        # Held for the whole step (user code logs through it); released in cleanup_step_run.
        process_environment.enter(uri, variables | batching.environment(settings.async_logging))
        try:
            with self._explaining(uri) as client:
                step, child_params = self._start_step(
                    client, info, settings, uri, artifact_location
                )
            if settings.autolog:
                import mlflow

                with AUTOLOG_LOCK:
                    mlflow.autolog(silent=True)
            # Only now: a batching-thread request while autolog() imports deadlocks (issue 9).
            if settings.async_logging:
                batching.open_ledger(info.step_run_id, uri, step.run_id, child_params)
        except BaseException:
            batching.close_ledger(info.step_run_id)
            process_environment.leave()
            raise
        with self._steps_lock:
            self._steps[info.step_run_id] = step

    def _start_step(
        self,
        client: MlflowClient,
        info: "StepRunInfo",
        settings: MLflowPlusSettings,
        uri: str,
        artifact_location: str | None,
    ) -> tuple[StepRun, dict[str, str]]:
        """Open the step's MLflow runs, push the one it logs into; return params still to log."""
        parent_id, exp_id, parent_run = self._parent_run(
            client, uri, artifact_location, info, settings
        )
        step_name = info.pipeline_step_name
        step_tags = {
            **_context_tags(info.snapshot, info.pipeline.name),
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
            if not settings.async_logging:  # else they travel in the step's first batch
                self._log(client, run.info.run_id, {}, params)
            self._log(client, parent_id, {tags.LAST_STEP: step_name}, {})
        else:
            self._log(client, parent_id, {tags.LAST_STEP: step_name}, params)
            run = parent_run or runs.placeholder_run(parent_id, exp_id, settings.run_name or "")
        active_run.push(run)
        child_params = params if settings.nested and settings.async_logging else {}
        step = StepRun(
            tracking_uri=uri,
            experiment_id=exp_id,
            parent_id=parent_id,
            run_id=run.info.run_id,
            nested=settings.nested,
            autolog=settings.autolog,
            ui_base=self._ui_base(uri),
            databricks=is_databricks_uri(uri),
        )
        return step, child_params

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
        experiment_name = self._experiment_name(settings.experiment_name or pipeline_name, uri)
        exp_id = runs.experiment_id(client, uri, experiment_name, artifact_location)
        run_tags = {
            **_context_tags(snapshot, pipeline_name),
            **settings.tags,
            tags.PIPELINE_RUN_ID: str(pipeline_run_id),
            tags.PIPELINE_NAME: pipeline_name,
            tags.RUN_NAME: zenml_run_name,
            tags.STACK: snapshot.stack.name if snapshot and snapshot.stack else "",
            tags.ZENML_VERSION: _zenml_version(),
        }
        parent_id, parent_run = runs.resolve_parent_run(
            client,
            uri,
            exp_id,
            str(pipeline_run_id),
            settings.run_name or zenml_run_name,
            run_tags,
            recorded=lambda: self._recorded_parent(pipeline_run_id, exp_id, uri),
            record=lambda parent: self._record_parent(pipeline_run_id, uri, exp_id, parent),
        )
        key = (uri, parent_id)
        if parent_run is not None:
            self._parent_status[key] = parent_run.info.status
        if self._parent_status.get(key) == "FINISHED":
            # The ZenML run is running again (resumed or re-run): so is its parent.
            client.update_run(parent_id, status="RUNNING")
            self._parent_status[key] = "RUNNING"
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
                    synchronous=True,  # the step's async_logging is for user code only
                )
        except MlflowException as error:
            if error.error_code != "INVALID_PARAMETER_VALUE" or not param_list:
                raise
            logger.warning(
                "Step parameters were not logged to MLflow run %s: %s", run_id, error.message
            )
            if tag_list:
                client.log_batch(run_id, tags=tag_list, synchronous=True)

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
            **batching.delivery_metadata(info.step_run_id),
        }

    def cleanup_step_run(self, info: "StepRunInfo", step_failed: bool) -> None:
        """End the step's runs, settle the parent's status and restore the process."""
        with self._steps_lock:
            step = self._steps.pop(info.step_run_id, None)
        if step is None:
            return
        try:
            with (
                batching.delivered(info.step_run_id) as lost,
                self._explaining(step.tracking_uri) as client,
            ):
                self._end_step(client, info, step, step_failed or lost)
        finally:
            if step.autolog:
                import mlflow

                with AUTOLOG_LOCK:
                    mlflow.autolog(disable=True, silent=True)
            process_environment.leave()

    def _end_step(
        self, client: MlflowClient, info: "StepRunInfo", step: StepRun, step_failed: bool
    ) -> None:
        """Terminate the step's runs and update the parent when the pipeline's outcome changed."""
        status = "FAILED" if step_failed else "FINISHED"
        for left_open in reversed(active_run.pop_until(step.run_id)):
            client.set_terminated(left_open, status)
        if step.nested:
            client.set_terminated(step.run_id, status)
        outcome, failed_step = pipeline_outcome(
            info.run_id, info.snapshot, info.pipeline_step_name, step_failed
        )
        if not step_failed:
            # ZenML saves the outputs after this hook: the step may still fail.
            run_finalizer.watch(
                info.step_run_id,
                lambda final: self._settle_after_step(step, info.pipeline_step_name, final),
                kind="step",
            )
        if outcome == "RUNNING":
            run_finalizer.watch(
                info.run_id,
                lambda final: self._settle_after_run(step, info.run_id, final.is_successful),
            )
            return
        self._settle_parent(client, step, outcome, failed_step)

    def _settle_parent(
        self, client: RunSettler, step: StepRun, outcome: str, failed_step: str | None
    ) -> None:
        """Give the parent run its final status, unless this process already gave it."""
        key = (step.tracking_uri, step.parent_id)
        if self._parent_status.get(key) == outcome:
            return
        if failed_step:
            client.set_tag(step.parent_id, tags.FAILED_STEP, failed_step, synchronous=True)
        client.set_terminated(step.parent_id, outcome)
        self._parent_status[key] = outcome

    def _settle_after_step(self, step: StepRun, step_name: str, final: "ExecutionStatus") -> None:
        """Fail the runs of a step that ZenML failed after its cleanup (saving its outputs)."""
        if final.is_successful:
            return
        uri = step.tracking_uri
        with self._explained(uri):
            client = detached_client(uri, self.client_variables(uri))
            if step.nested:
                client.set_terminated(step.run_id, "FAILED")
            if final != ExecutionStatus.RETRIED:  # else a later attempt decides
                self._settle_parent(client, step, "FAILED", step_name)

    def _settle_after_run(self, step: StepRun, run_id: UUID, succeeded: bool) -> None:
        """Settle the parent run after ZenML finished the pipeline run (see finalizer).

        Steps may be running meanwhile, so the client carries the credentials read now (a
        rotated secret counts) instead of putting them into the process environment.
        """
        failed = None if succeeded else first_failed_step(run_id)
        uri = step.tracking_uri
        with self._explained(uri):
            client = detached_client(uri, self.client_variables(uri))
            self._settle_parent(client, step, "FINISHED" if succeeded else "FAILED", failed)

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
        uri, artifact_location = self.tracking_store()
        try:
            with self.connected(uri, self.client_variables(uri)) as client:
                parent_id, exp_id, _ = self._parent_run(
                    client, uri, artifact_location, run, settings
                )
        except TrackingServerError as error:
            errors.defer(run_id, error, RequestLimits.of(self.config).bound_seconds())
            return {}
        return self._parent_metadata(uri, exp_id, parent_id)


def _context_tags(
    snapshot: "PipelineSnapshotResponse | None", pipeline_name: str
) -> dict[str, str]:
    """Return the MLflow user and source tags of a run of this pipeline snapshot."""
    from mlflow.utils.credentials import read_mlflow_creds

    spec = snapshot.pipeline_spec if snapshot else None
    source = spec.source.import_path if spec and spec.source else None
    return tags.run_context(source, pipeline_name, read_mlflow_creds().username)


def _zenml_version() -> str:
    """Return the running ZenML version (the built-in flavor's marker tag value)."""
    import zenml

    return str(zenml.__version__)
