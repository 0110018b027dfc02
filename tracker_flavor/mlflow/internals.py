"""Every use of MLflow's and ZenML's private API, in one place.

Each touch point below names the internal, the versions it was checked against and what the
tracker does when it is missing: it falls back to the public API (slower, never a crashed step)
and warns once per process. `docs/versions.md` lists the same table for users. ZenML's private
API is not used anywhere (checked against ZenML 0.96.4, 0.97.0 and 0.98.0).
"""

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker_flavor.concurrency.caches import Once

if TYPE_CHECKING:
    from mlflow.entities import Run, RunInfo
    from mlflow.store.tracking.abstract_store import AbstractStore

logger = logging.getLogger(__name__)

CHECKED_MLFLOW = ("2.22.1", "3.10.1", "3.17.2")


@dataclass(frozen=True)
class TouchPoint:
    """One private MLflow name the tracker uses, and what it does without it."""

    internal: str
    purpose: str
    fallback: str


ASYNC_QUEUE = TouchPoint(
    "mlflow.tracking._tracking_service.utils._get_store, AbstractStore._async_logging_queue",
    "the batching queue stands in for the store's async queue while steps run",
    "no batching: values go through MLflow's own logging, without a delivery ledger",
)
ACTIVE_RUN_STACK = TouchPoint(
    "mlflow.tracking.fluent._active_run_stack, _last_active_run_id",
    "the step's run becomes the thread's active run without a request",
    "mlflow.start_run(run_id=...) and mlflow.end_run(): 3 more requests a step",
)
TRACKING_URI = TouchPoint(
    "mlflow.tracking._tracking_service.utils._tracking_uri",
    "the process's own tracking URI is restored exactly after the steps",
    "mlflow.get_tracking_uri() when mlflow.is_tracking_uri_set(), else none",
)
VALIDATORS = TouchPoint(
    "mlflow.utils.validation._validate_metric, _validate_param, _validate_tag",
    "an invalid value is refused alone when logged",
    "no check when logged: the server refuses it and the batch is split to isolate it",
)
SCHEMA = TouchPoint(
    "mlflow.store.db.utils._get_latest_schema_revision, _get_alembic_config",
    "the embedded SQLite store is created once across processes and checked for repairs",
    "MLflow creates the store itself on first use (pipelines started together may race)",
)
RUN_INFO = TouchPoint(
    "mlflow.entities.RunInfo(run_uuid=...) before MLflow 3",
    "a run object for a run known by id, without a request",
    "the constructor's parameters are read: run_uuid is passed where it is required",
)
URL_PRINTING = TouchPoint(
    "mlflow.tracking._tracking_service.client.TrackingServiceClient._log_url, MLflow 2 only",
    "MLflow 2 honours MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT as MLflow 3 does",
    "each run end fetches the run once more and prints MLflow's 'View run' lines",
)
AUTH_PROVIDERS = TouchPoint(
    "mlflow.tracking.request_auth.registry._request_auth_provider_registry",
    "the tracker's request-auth provider is known to MLflow also where the package's entry point "
    "is not installed (the flavor loaded from source)",
    "the entry point only: without it, requests to a server with credentials fail with HTTP 401",
)
LATEST_ACTIVE_RUN = TouchPoint(
    "mlflow.tracking.fluent._get_latest_active_run, also as imported by "
    "mlflow.tracing.processor.base_mlflow (MLflow 3)",
    "a trace started in a step's thread names that step's run, not the latest run of any thread",
    "MLflow's own rule: the most recently started active run of the process, which may be a "
    "mapped sibling step's",
)
LATE_VALUES = TouchPoint(
    "mlflow.tracking._tracking_service.utils._get_store, as TrackingServiceClient.store calls it",
    "a value a step's thread logs after the step ended, when its run is not in the process's "
    "tracking store any more, is dropped and counted",
    "MLflow's own behaviour: the value goes to the process's tracking store, where the thread "
    "gets MLflow's error that the run does not exist",
)
WORKSPACE_CONFIG = TouchPoint(
    "mlflow.utils.databricks_utils._dynamic_token_config_provider, "
    "mlflow.legacy_databricks_cli.configure.provider.DatabricksConfig",
    "MLflow's Databricks client takes the workspace's host and credentials from the tracker's "
    "memory, never from DATABRICKS_* variables",
    "none: steps on Databricks fail to authenticate unless ~/.databrickscfg holds credentials",
)
SDK_ARTIFACTS = TouchPoint(
    "mlflow.store.artifact.databricks_sdk_artifact_repo.DatabricksSdkArtifactRepository (MLflow 3)",
    "run and model artifacts on Databricks go through MLflow's REST artifact repository, "
    "authenticated from memory, where the SDK's repository finds no credentials in the "
    "environment",
    "artifact uploads to Databricks fail unless ~/.databrickscfg holds credentials",
)
CURRENT_EXPERIMENT = TouchPoint(
    "mlflow.tracking.fluent._get_experiment_id",
    "a run a step starts through a name imported before the step started (from mlflow import "
    "start_run) is created in the pipeline's experiment, as are its models and traces",
    "such a run is created in the process's current experiment (Default unless set)",
)
STEPLESS_METRICS = TouchPoint(
    "mlflow.log_metric and mlflow.log_metrics: their step=None default, which they pass on to "
    "MlflowClient as step or 0",
    "a metric a step logs into the shared parent run without a step goes at the step's own "
    "position, also through a name imported before the step started",
    "such a metric keeps MLflow's step 0, where another step's value of the same key hides it",
)
TOUCH_POINTS = (
    ASYNC_QUEUE,
    LATE_VALUES,
    ACTIVE_RUN_STACK,
    LATEST_ACTIVE_RUN,
    CURRENT_EXPERIMENT,
    STEPLESS_METRICS,
    TRACKING_URI,
    VALIDATORS,
    SCHEMA,
    RUN_INFO,
    URL_PRINTING,
    AUTH_PROVIDERS,
    WORKSPACE_CONFIG,
    SDK_ARTIFACTS,
)
SUPPRESS_URLS = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
"""MLflow 3's switch for its file store; older releases take `file:` stores without it."""


class NoStep(int):
    """The step of a metric logged without one while steps run: 0, told apart from a given 0."""

    def __bool__(self) -> bool:
        return True  # MLflow passes `step or 0` on: this marker, not a plain 0


NO_STEP = NoStep(0)


class Internals:
    """The touch points that fall back when missing, warning once per process for each."""

    def __init__(self, once: Once) -> None:
        self._once = once
        self._replaced_log_url: Any = None
        """MLflow 2's URL printer, while the backport below stands in for it."""
        self._replaced_workspace_config: list[Any] = []
        """MLflow's Databricks config provider, while the tracker's stands in for it."""
        self._replaced_sdk_artifacts: Any = None
        """The SDK artifact repository's constructor, while the wrapper below stands in."""

    def degrade(self, point: TouchPoint, error: BaseException) -> None:
        """Warn, once per process, that `point` is missing and its fallback is in use."""
        import mlflow

        if not self._once.first(point):
            return
        logger.warning(
            "MLflow %s has no %s (%s: %s); falling back to: %s. The tracker was checked against "
            "MLflow %s (docs/versions.md).",
            mlflow.__version__,
            point.internal,
            type(error).__name__,
            error,
            point.fallback,
            ", ".join(CHECKED_MLFLOW),
        )

    def tracking_store(self, uri: str) -> "AbstractStore | None":
        """Return MLflow's cached tracking store for `uri` (the one fluent calls log through)."""
        try:
            from mlflow.tracking._tracking_service.utils import _get_store
        except ImportError as error:
            self.degrade(ASYNC_QUEUE, error)
            return None
        return _get_store(uri)  # type: ignore[no-any-return]

    def async_queue(self, store: "AbstractStore") -> Any:
        """Return the store's async logging queue, or None if this MLflow has none there."""
        try:
            return store._async_logging_queue
        except AttributeError as error:
            self.degrade(ASYNC_QUEUE, error)
            return None

    def _fluent_stack(self) -> list[Any] | None:
        try:
            from mlflow.tracking import fluent

            return fluent._active_run_stack.get()  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as error:
            self.degrade(ACTIVE_RUN_STACK, error)
            return None

    def push_active_run(self, run: "Run") -> None:
        """Make `run` the active run of the current thread, without a request."""
        from mlflow.tracking import fluent

        stack = self._fluent_stack()
        if stack is None:
            import mlflow

            mlflow.start_run(run_id=run.info.run_id, nested=True)
            return
        stack.append(fluent.ActiveRun(run))

    def active_run_ids(self) -> list[str]:
        """Return the ids on the current thread's active-run stack, oldest first."""
        stack = self._fluent_stack()
        if stack is None:
            import mlflow

            active = mlflow.active_run()
            return [] if active is None else [active.info.run_id]
        return [run.info.run_id for run in stack]

    def pop_active_runs(self, run_id: str) -> list[str]:
        """Remove `run_id` and the runs above it from the thread's stack; return those above it.

        The tracker decides statuses itself: the runs are not terminated. Those above it are the
        runs the step's code started and did not end.
        """
        from mlflow.tracking import fluent

        stack = self._fluent_stack()
        if stack is None:
            return _end_active_runs(run_id)
        ids = [run.info.run_id for run in stack]
        if run_id not in ids:
            return []
        position = ids.index(run_id)
        left_open = ids[position + 1 :]
        del stack[position:]
        try:
            fluent._last_active_run_id.set(run_id)
        except AttributeError as error:
            self.degrade(ACTIVE_RUN_STACK, error)
        return left_open

    def latest_active_run_rule(self) -> Callable[[], "Run | None"] | None:
        """Return the function MLflow's tracing asks for a new trace's run, or None if moved."""
        try:
            from mlflow.tracking import fluent

            return fluent._get_latest_active_run
        except (ImportError, AttributeError) as error:
            self.degrade(LATEST_ACTIVE_RUN, error)
            return None

    def set_latest_active_run_rule(self, rule: Callable[[], "Run | None"]) -> None:
        """Make MLflow's tracing ask `rule` for a new trace's run."""
        import importlib

        from mlflow.tracking import fluent

        setattr(fluent, "_get_latest_active_run", rule)  # noqa: B010 (a private name)
        try:  # MLflow 3 imports it once; MLflow 2 imports it at each trace
            processor = importlib.import_module("mlflow.tracing.processor.base_mlflow")
        except ImportError:
            return
        if hasattr(processor, "_get_latest_active_run"):
            setattr(processor, "_get_latest_active_run", rule)  # noqa: B010

    def experiment_rule(self) -> Callable[[], str | None] | None:
        """Return the function MLflow's fluent API asks for the current experiment, or None."""
        try:
            from mlflow.tracking import fluent

            return fluent._get_experiment_id
        except (ImportError, AttributeError) as error:
            self.degrade(CURRENT_EXPERIMENT, error)
            return None

    def set_experiment_rule(self, rule: Callable[[], str | None]) -> None:
        """Make MLflow's fluent API ask `rule` for the current experiment."""
        from mlflow.tracking import fluent

        setattr(fluent, "_get_experiment_id", rule)  # noqa: B010 (a private name)

    def set_step_default(self, default: int | None) -> None:
        """Make `default` the step of `mlflow.log_metric(s)` called without one, however imported.

        A name imported before the step started is the same function: its default is changed in
        place, where an attribute put on the `mlflow` module would miss it.
        """
        from mlflow.tracking import fluent

        for function in (fluent.log_metric, fluent.log_metrics):
            parameters = list(inspect.signature(function).parameters.values())
            step = next((p for p in parameters if p.name == "step"), None)
            defaults = list(function.__defaults__ or ())
            positional = [p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
            if step is None or step not in positional or step.default not in (None, NO_STEP):
                self.degrade(STEPLESS_METRICS, TypeError(f"{function.__name__}: no step=None"))
                return
            defaults[positional.index(step) - len(positional) + len(defaults)] = default
            function.__defaults__ = tuple(defaults)

    def store_rule(self) -> Callable[..., "AbstractStore"] | None:
        """Return the function MLflow's clients ask for a tracking store, or None if moved."""
        try:
            from mlflow.tracking._tracking_service import utils as tracking_utils

            return tracking_utils._get_store
        except (ImportError, AttributeError) as error:
            self.degrade(LATE_VALUES, error)
            return None

    def set_store_rule(self, rule: Callable[..., Any]) -> None:
        """Make MLflow's clients ask `rule` for their tracking store."""
        from mlflow.tracking._tracking_service import utils as tracking_utils

        setattr(tracking_utils, "_get_store", rule)  # noqa: B010 (a private name)

    def process_tracking_uri(self) -> str | None:
        """Return the tracking URI set in this process (None: MLflow resolves its default)."""
        try:
            from mlflow.tracking._tracking_service import utils as tracking_utils

            return tracking_utils._tracking_uri
        except (ImportError, AttributeError) as error:
            self.degrade(TRACKING_URI, error)
        import mlflow

        return mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None

    def set_process_tracking_uri(self, uri: str | None) -> None:
        """Set (None: unset) the process's tracking URI; MLflow 2 then honours SUPPRESS_URLS."""
        import mlflow

        self._backport_url_suppression()
        mlflow.set_tracking_uri(uri)  # type: ignore[arg-type]

    def _backport_url_suppression(self) -> None:
        """Make MLflow 2's run ends skip the URL print (and its request) under SUPPRESS_URLS."""
        from mlflow import environment_variables

        if hasattr(environment_variables, SUPPRESS_URLS):
            return  # MLflow 3 reads it itself
        if self._replaced_log_url is not None:
            return
        try:
            from mlflow.tracking._tracking_service.client import TrackingServiceClient

            log_url = TrackingServiceClient._log_url
        except (ImportError, AttributeError) as error:
            self.degrade(URL_PRINTING, error)
            return

        def quiet_log_url(client: Any, run_id: str) -> None:
            if os.environ.get(SUPPRESS_URLS, "").lower() not in ("true", "1"):
                log_url(client, run_id)

        self._replaced_log_url = log_url
        TrackingServiceClient._log_url = quiet_log_url  # type: ignore[method-assign]

    def register_auth_provider(self, provider: type, name: str) -> None:
        """Add the request-auth provider to MLflow's registry unless its entry point did."""
        try:
            from mlflow.tracking.request_auth.registry import (
                _request_auth_provider_registry as registry,
            )
        except ImportError as error:
            self.degrade(AUTH_PROVIDERS, error)
            return
        if not any(known.get_name() == name for known in registry):
            registry.register(provider)

    def install_workspace_config(self, provider: Callable[[Any], Any]) -> None:
        """Put `provider(previous)` in MLflow's slot for a Databricks config provider.

        `previous` is what held the slot (on a Databricks cluster, the notebook's token).
        """
        try:
            from mlflow.utils import databricks_utils

            previous = databricks_utils._dynamic_token_config_provider
        except (ImportError, AttributeError) as error:
            self.degrade(WORKSPACE_CONFIG, error)
            return
        if not self._replaced_workspace_config:
            self._replaced_workspace_config.append(previous)
            databricks_utils._dynamic_token_config_provider = provider(previous)

    def databricks_config(self, **fields: Any) -> Any:
        """Return MLflow's legacy Databricks config object (host, username, password, token...)."""
        try:
            from mlflow.legacy_databricks_cli.configure.provider import DatabricksConfig
        except ImportError as error:
            self.degrade(WORKSPACE_CONFIG, error)
            return None
        return DatabricksConfig(jobs_api_version=None, **fields)

    def fall_back_from_sdk_artifacts(self, authenticated: Callable[[], bool]) -> None:
        """Let MLflow 3's Databricks run artifacts fall back to its REST repository.

        The SDK's repository authenticates from the environment only and fails when built
        without credentials there; MLflow then uses its REST repository for each operation,
        which asks the config provider. `authenticated` tells whether the tracker's provider
        holds the workspace's credentials (else the SDK's error stands).
        """
        if self._replaced_sdk_artifacts is not None:
            return
        try:
            from mlflow.store.artifact.databricks_sdk_artifact_repo import (
                DatabricksSdkArtifactRepository as Repository,
            )
        except ImportError:
            return  # MLflow 2: its Databricks artifact repository asks the config provider
        build = Repository.__init__

        def build_or_fall_back(repository: Any, *args: Any, **kwargs: Any) -> None:
            try:
                build(repository, *args, **kwargs)
            except ValueError:
                # Only the plain repository: MLflow's tracking repositories wrap it with the
                # REST fallback; UC volumes' subclass has none.
                if type(repository) is not Repository or not authenticated():
                    raise
                # Each operation then fails, and MLflow falls back.
                repository.wc = None  # type: ignore[assignment]

        self._replaced_sdk_artifacts = build
        Repository.__init__ = build_or_fall_back  # type: ignore[method-assign, assignment]

    def uninstall(self) -> None:
        """Put back what the seam replaced in MLflow."""
        if self._replaced_workspace_config:
            from mlflow.utils import databricks_utils

            databricks_utils._dynamic_token_config_provider = self._replaced_workspace_config.pop()
        if self._replaced_sdk_artifacts is not None:
            from mlflow.store.artifact.databricks_sdk_artifact_repo import (
                DatabricksSdkArtifactRepository,
            )

            DatabricksSdkArtifactRepository.__init__ = self._replaced_sdk_artifacts  # type: ignore[method-assign]
            self._replaced_sdk_artifacts = None
        if self._replaced_log_url is None:
            return
        from mlflow.tracking._tracking_service.client import TrackingServiceClient

        TrackingServiceClient._log_url = self._replaced_log_url  # type: ignore[method-assign]
        self._replaced_log_url = None

    def validators(self) -> tuple[Any, Any, Any] | None:
        """Return MLflow's metric, param and tag validators, or None if they moved."""
        try:
            from mlflow.utils.validation import _validate_metric, _validate_param, _validate_tag
        except ImportError as error:
            self.degrade(VALIDATORS, error)
            return None
        return _validate_metric, _validate_param, _validate_tag

    def has_schema_tools(self) -> bool:
        """Tell whether this MLflow has the schema helpers the embedded store's set-up uses."""
        try:
            from mlflow.store.db.utils import (  # noqa: F401
                _get_alembic_config,
                _get_latest_schema_revision,
            )
        except ImportError as error:
            self.degrade(SCHEMA, error)
            return False
        return True


def set_async_queue(store: "AbstractStore", queue: Any) -> None:
    """Make `queue` the store's async logging queue."""
    store._async_logging_queue = queue


def _end_active_runs(run_id: str) -> list[str]:
    """Public fallback of `pop_active_runs`: end the runs, keeping the status each has now."""
    import mlflow

    left_open: list[str] = []
    while (active := mlflow.active_run()) is not None:
        current = mlflow.MlflowClient().get_run(active.info.run_id).info.status
        mlflow.end_run(status=current)
        if active.info.run_id == run_id:
            return left_open[::-1]
        left_open.append(active.info.run_id)
    return []


def latest_schema_revision() -> str:
    """Return the schema revision the installed MLflow needs for a SQL store."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def alembic_config(uri: str) -> Any:
    """Return MLflow's Alembic configuration for the SQL store at `uri`."""
    from mlflow.store.db.utils import _get_alembic_config

    return _get_alembic_config(uri)


def run_info(**fields: Any) -> "RunInfo":
    """Build a RunInfo; MLflow 2 requires `run_uuid` (the same id) besides `run_id`."""
    from mlflow.entities import RunInfo

    if "run_uuid" in inspect.signature(RunInfo).parameters:
        fields.setdefault("run_uuid", fields["run_id"])
    return RunInfo(**fields)


def system_metrics_monitor(run_id: str, uri: str, interval: float, node: str | None) -> Any:
    """Build MLflow's system-metrics sampler for `run_id` at `uri`, logging one sample at a time.

    Without its `tracking_uri` parameter (MLflow 2.22 lacks it) the sampler logs to the process's
    tracking URI: its metrics logger (a public attribute) is then replaced by one bound to `uri`.
    """
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from mlflow.utils.autologging_utils import BatchMetricsLogger

    options: dict[str, Any] = {"sampling_interval": interval, "samples_before_logging": 1}
    bound = "tracking_uri" in inspect.signature(SystemMetricsMonitor).parameters
    monitor: Any = SystemMetricsMonitor(
        run_id, node_id=node, **options, **({"tracking_uri": uri} if bound else {})
    )
    if not bound:
        monitor.mlflow_logger = BatchMetricsLogger(run_id, tracking_uri=uri)
    return monitor


def create_model_version_from_files(
    client: Any, name: str, source: str, run_id: str, tags: dict[str, str], local_dir: str
) -> Any:
    """Create a model version whose files the registry takes from `local_dir` (Unity Catalog).

    Without `MlflowClient._create_model_version(local_model_path=...)`, MLflow's public
    `create_model_version` downloads the files from `source` first.
    """
    create = getattr(client, "_create_model_version", None)
    if create is None or "local_model_path" not in inspect.signature(create).parameters:
        return client.create_model_version(name, source, run_id, tags=tags)
    return create(name=name, source=source, run_id=run_id, tags=tags, local_model_path=local_dir)


def has_logged_models() -> bool:
    """Tell whether this MLflow keeps models as LoggedModels of their run (MLflow 3)."""
    from mlflow import entities

    return hasattr(entities, "LoggedModel")
