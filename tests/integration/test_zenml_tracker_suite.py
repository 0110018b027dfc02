"""ZenML's own tests of its MLflow experiment tracker, run against the mlflow_plus classes.

Ported from zenml-io/zenml `tests/integration/integrations/mlflow/experiment_trackers/
test_mlflow_experiment_tracker.py` (ZenML 0.98), changed only in class and flavor names, except:
- a server without authentication is accepted (ZenML refuses it; docs/migrating.md);
- the tests of a missing parent run and of inherited `MLFLOW_RUN_ID` patch `mlflow.start_run`,
  which mlflow_plus does not call: they run as real pipelines in test_builtin_behaviours.py;
- the local-backend test uses a real stack instead of a mocked Client, and the public API
  instead of the built-in's private `_set_active_experiment`;
- the non-local artifact store is a local-filesystem store of another flavor (no S3 client here).
"""

import os
from contextlib import ExitStack as does_not_raise
from datetime import datetime
from typing import Any, ClassVar
from uuid import uuid4

import mlflow
import pytest
from mlflow.utils.databricks_utils import get_databricks_host_creds
from pydantic import ValidationError
from zenml.artifact_stores import BaseArtifactStore, BaseArtifactStoreConfig, LocalArtifactStore
from zenml.artifact_stores.local_artifact_store import LocalArtifactStoreConfig
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.exceptions import StackValidationError
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
    DATABRICKS_AUTH_TYPE,
    DATABRICKS_CLIENT_ID,
    DATABRICKS_CLIENT_SECRET,
    DATABRICKS_HOST,
    DATABRICKS_PASSWORD,
    DATABRICKS_UNITY_CATALOG,
    DATABRICKS_USERNAME,
    LOCAL_MLFLOW_ARTIFACTS_DIRECTORY,
    LOCAL_MLFLOW_BACKEND_FILENAME,
    MLFLOW_ENABLE_DB_SDK,
    MLFLOW_TRACKING_INSECURE_TLS,
    MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_USERNAME,
    MLFlowExperimentTracker,
)
from zenml.io.local_filesystem import LocalFilesystem
from zenml.orchestrators import LocalOrchestrator
from zenml.orchestrators.local.local_orchestrator import LocalOrchestratorConfig
from zenml.stack import Stack

from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.runtime import runtime
from tracker_flavor.tracker import MLflowPlusExperimentTracker

pytestmark = pytest.mark.integration


class MountedArtifactStoreConfig(BaseArtifactStoreConfig):
    """A shared directory mounted on every machine: not ZenML's LocalArtifactStore."""

    SUPPORTED_SCHEMES: ClassVar[set[str]] = {""}


class MountedArtifactStore(LocalFilesystem, BaseArtifactStore):
    """An artifact store of a custom flavor on a mounted filesystem."""


def _component(cls: type, config: Any, flavor: str, kind: StackComponentType) -> Any:
    return cls(
        name="",
        id=uuid4(),
        config=config,
        flavor=flavor,
        type=kind,
        user=uuid4(),
        created=datetime.now(),
        updated=datetime.now(),
    )


@pytest.fixture
def local_orchestrator() -> LocalOrchestrator:
    return _component(
        LocalOrchestrator, LocalOrchestratorConfig(), "local", StackComponentType.ORCHESTRATOR
    )


@pytest.fixture
def local_artifact_store(tmp_path) -> LocalArtifactStore:
    config = LocalArtifactStoreConfig(path=str(tmp_path / "local"))
    return _component(LocalArtifactStore, config, "local", StackComponentType.ARTIFACT_STORE)


@pytest.fixture
def mounted_artifact_store(tmp_path) -> MountedArtifactStore:
    config = MountedArtifactStoreConfig(path=str(tmp_path / "mounted"))
    return _component(MountedArtifactStore, config, "mounted", StackComponentType.ARTIFACT_STORE)


def _create_mlflow_experiment_tracker(config: MLflowPlusConfig) -> MLflowPlusExperimentTracker:
    """Creates an MLflow experiment tracker for validation tests."""
    tracker = _component(
        MLflowPlusExperimentTracker, config, "mlflow_plus", StackComponentType.EXPERIMENT_TRACKER
    )
    assert isinstance(tracker, MLflowPlusExperimentTracker)
    return tracker


def test_mlflow_experiment_tracker_attributes() -> None:
    experiment_tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(
            tracking_uri="http://localhost:5000",
            tracking_username="john_doe",
            tracking_password="password",
            tracking_insecure_tls=True,
        )
    )
    assert experiment_tracker.type == StackComponentType.EXPERIMENT_TRACKER
    assert experiment_tracker.flavor == "mlflow_plus"
    assert isinstance(experiment_tracker, MLFlowExperimentTracker)


def test_mlflow_experiment_tracker_stack_validation(
    local_orchestrator, local_artifact_store, mounted_artifact_store
) -> None:
    experiment_tracker = _create_mlflow_experiment_tracker(MLflowPlusConfig())

    with pytest.raises(StackValidationError):
        Stack(
            name="",
            orchestrator=local_orchestrator,
            artifact_store=mounted_artifact_store,
            experiment_tracker=experiment_tracker,
            id=uuid4(),
        ).validate()

    with does_not_raise():
        Stack(
            name="",
            id=uuid4(),
            orchestrator=local_orchestrator,
            artifact_store=local_artifact_store,
            experiment_tracker=experiment_tracker,
        ).validate()


@pytest.mark.parametrize(
    "config",
    [
        dict(
            tracking_uri="http://localhost:5000",
            tracking_username="john_doe",
            tracking_password="password",
        ),
        dict(tracking_uri="http://localhost:5000", tracking_token="token1234"),
        dict(
            tracking_uri="databricks",
            tracking_username="john_doe",
            tracking_password="password",
            databricks_host="https://databricks.com",
        ),
        dict(
            tracking_uri="databricks",
            tracking_token="token1234",
            databricks_host="https://databricks.com",
        ),
        dict(
            tracking_uri="databricks",
            databricks_client_id="client-id",
            databricks_client_secret="client-secret",
            databricks_host="https://databricks.com",
        ),
    ],
)
def test_mlflow_experiment_tracker_authentication_options_are_valid(config) -> None:
    with does_not_raise():
        _create_mlflow_experiment_tracker(MLflowPlusConfig(**config))


@pytest.mark.parametrize(
    "config",
    [
        {"tracking_uri": "databricks", "databricks_host": "https://databricks.com"},
        {
            "tracking_uri": "http://localhost:5000",
            "tracking_username": "john_doe",
            "tracking_password": "password",
            "tracking_token": "token1234",
        },
        {
            "tracking_uri": "databricks",
            "tracking_username": "john_doe",
            "tracking_password": "password",
            "tracking_token": "token1234",
            "databricks_host": "https://databricks.com",
        },
        {
            "tracking_uri": "databricks",
            "tracking_token": "token1234",
            "databricks_client_id": "client-id",
            "databricks_client_secret": "client-secret",
            "databricks_host": "https://databricks.com",
        },
    ],
)
def test_mlflow_experiment_tracker_requires_exactly_one_remote_authentication_method(
    config: dict[str, str],
) -> None:
    with pytest.raises(ValidationError):
        MLflowPlusConfig(**config)


def test_a_server_without_authentication_is_accepted_unlike_the_builtin() -> None:
    """The documented difference: ZenML refuses this config, mlflow_plus takes it."""
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
        MLFlowExperimentTrackerConfig,
    )

    with pytest.raises(ValidationError, match="requires exactly one authentication method"):
        MLFlowExperimentTrackerConfig(tracking_uri="http://localhost:5000")
    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(tracking_uri="http://localhost:5000")
    )
    assert tracker.get_tracking_uri() == "http://localhost:5000"


@pytest.mark.parametrize(
    "config",
    [
        {"tracking_uri": "http://localhost:5000", "tracking_username": "john_doe"},
        {"tracking_uri": "http://localhost:5000", "tracking_password": "password"},
        {
            "tracking_uri": "databricks",
            "databricks_client_id": "client-id",
            "databricks_host": "https://databricks.com",
        },
        {
            "tracking_uri": "databricks",
            "databricks_client_secret": "client-secret",
            "databricks_host": "https://databricks.com",
        },
    ],
)
def test_mlflow_experiment_tracker_requires_complete_credential_pairs(
    config: dict[str, str],
) -> None:
    with pytest.raises(ValidationError):
        MLflowPlusConfig(**config)


@pytest.mark.parametrize(
    "config",
    [
        {
            "tracking_uri": "http://localhost:5000",
            "tracking_token": "token1234",
            "databricks_host": "https://databricks.com",
        },
        {
            "tracking_uri": "http://localhost:5000",
            "tracking_token": "token1234",
            "databricks_client_id": "client-id",
            "databricks_client_secret": "client-secret",
        },
        {
            "tracking_uri": "http://localhost:5000",
            "tracking_token": "token1234",
            "enable_unity_catalog": True,
        },
    ],
)
def test_mlflow_experiment_tracker_rejects_databricks_options_without_databricks_tracking_uri(
    config: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        MLflowPlusConfig(**config)


def test_mlflow_experiment_tracker_requires_databricks_host() -> None:
    with pytest.raises(ValidationError):
        MLflowPlusConfig(tracking_uri="databricks", tracking_token="token1234")


def test_mlflow_experiment_tracker_set_config(
    monkeypatch: pytest.MonkeyPatch, isolated_mlflow_environment: None
) -> None:
    for env_var in [
        DATABRICKS_AUTH_TYPE,
        DATABRICKS_CLIENT_ID,
        DATABRICKS_CLIENT_SECRET,
        MLFLOW_ENABLE_DB_SDK,
    ]:
        monkeypatch.delenv(env_var, raising=False)

    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(
            tracking_uri="http://localhost:5000",
            tracking_username="john_doe",
            tracking_password="password",
            tracking_insecure_tls=True,
        )
    )
    tracker.configure_mlflow()
    # Unlike the built-in, the password stays out of the environment: MLflow's requests to the
    # server get it from the tracker's memory.
    assert MLFLOW_TRACKING_USERNAME not in os.environ
    assert MLFLOW_TRACKING_PASSWORD not in os.environ
    assert os.environ["MLFLOW_TRACKING_AUTH"] == "mlflow_plus"
    held = runtime.mlflow.credentials.find("http://localhost:5000/api/2.0/mlflow/runs/get")
    assert held is not None and held.authorization() == "Basic am9obl9kb2U6cGFzc3dvcmQ="
    assert os.environ[MLFLOW_TRACKING_INSECURE_TLS] == "true"

    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(
            tracking_uri="databricks",
            tracking_username="john_doe",
            tracking_password="password",
            databricks_host="https://databricks.com",
        )
    )
    tracker.configure_mlflow()
    # Unlike the built-in, Databricks' credentials stay out of the environment too: MLflow's
    # Databricks client gets them from the tracker's memory.
    assert not {DATABRICKS_USERNAME, DATABRICKS_PASSWORD, DATABRICKS_HOST} & set(os.environ)
    creds = get_databricks_host_creds("databricks")
    assert (creds.host, creds.username, creds.password) == (
        "https://databricks.com", "john_doe", "password",
    )  # fmt: skip
    assert os.environ[MLFLOW_TRACKING_INSECURE_TLS] == "false"
    assert tracker.config.enable_unity_catalog is False
    assert mlflow.get_registry_uri() == "databricks"

    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(
            tracking_uri="databricks",
            tracking_username="john_doe",
            tracking_password="password",
            databricks_host="https://databricks.com",
            enable_unity_catalog=True,
        )
    )
    tracker.configure_mlflow()
    assert mlflow.get_registry_uri() == DATABRICKS_UNITY_CATALOG

    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(
            tracking_uri="databricks",
            databricks_client_id="client-id",
            databricks_client_secret="client-secret",
            databricks_host="https://databricks.com",
        )
    )
    tracker.configure_mlflow()
    assert not {DATABRICKS_HOST, DATABRICKS_CLIENT_ID, DATABRICKS_CLIENT_SECRET} & set(os.environ)
    assert DATABRICKS_AUTH_TYPE not in os.environ
    held = runtime.mlflow.credentials.find("databricks")
    assert held is not None and held.databricks_client_id == "client-id"
    # MLflow's SDK path reads credentials from the environment only: the tracker turns it off.
    assert os.environ[MLFLOW_ENABLE_DB_SDK] == "false"
    assert mlflow.get_registry_uri() == "databricks"


def test_mlflow_experiment_tracker_uses_sqlite_for_local_backend(
    zenml_stack: str, embedded_client: Any, isolated_mlflow_environment: None
) -> None:
    from tests.integration.pipelines import linear

    path = Client().active_stack.artifact_store.path
    experiment_tracker = _create_mlflow_experiment_tracker(MLflowPlusConfig())
    expected_tracking_uri = "sqlite:///" + os.path.abspath(
        os.path.join(path, LOCAL_MLFLOW_BACKEND_FILENAME)
    )
    expected_artifact_path = os.path.abspath(os.path.join(path, LOCAL_MLFLOW_ARTIFACTS_DIRECTORY))

    assert experiment_tracker.get_tracking_uri() == expected_tracking_uri
    assert experiment_tracker.local_path == expected_artifact_path

    experiment_tracker.configure_mlflow()
    assert mlflow.get_tracking_uri() == expected_tracking_uri
    linear()  # the session tracker creates the pipeline's experiment in that store
    experiment = embedded_client.get_experiment_by_name("linear")
    assert experiment.artifact_location == "file://" + expected_artifact_path


def test_get_tracking_uri_keeps_a_secret_reference_unless_asked_for_plain_text(zenml_stack):
    Client().create_secret("tracking_store", values={"uri": "http://127.0.0.1:5999"})
    tracker = _create_mlflow_experiment_tracker(
        MLflowPlusConfig(tracking_uri="{{tracking_store.uri}}")
    )
    assert tracker.get_tracking_uri(as_plain_text=False) == "{{tracking_store.uri}}"
    assert tracker.get_tracking_uri() == "http://127.0.0.1:5999"
