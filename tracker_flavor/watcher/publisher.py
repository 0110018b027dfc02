"""MLflow writes after a step, made without touching the process's MLflow environment.

Outputs are sent once ZenML has published the step, on the tracker's watcher thread, when the
step's environment (tracking URI, credentials) is no longer applied and other code of the
process may run. So this carries the server's address and credentials in itself: the one REST
client (mlflow/rest.py) for a server, a client bound to the URI for a database or file store.
"""

import json
import os
import posixpath
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.mlflow.internals import create_model_version_from_files
from tracker_flavor.mlflow.rest import RestClient

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

    from tracker_flavor.mlflow.connection import Connection

PROXIED_SCHEME = "mlflow-artifacts:"
"""Artifact URIs of a server that proxies uploads (`mlflow server --artifacts-destination`)."""
GET_RUN = "/api/2.0/mlflow/runs/get"
LOG_INPUTS = "/api/2.0/mlflow/runs/log-inputs"
CREATE_REGISTERED_MODEL = "/api/2.0/mlflow/registered-models/create"
CREATE_MODEL_VERSION = "/api/2.0/mlflow/model-versions/create"
LOGGED_MODELS = "/api/2.0/mlflow/logged-models"
LOG_OUTPUTS = "/api/2.0/mlflow/runs/outputs"


class Publisher(Protocol):
    """What sending a step's outputs needs of MLflow."""

    def log_inputs(self, run_id: str, datasets: list["DatasetInput"]) -> None:
        """Record dataset entries on a run."""

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag of a run."""

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files under `artifact_path` of the run's artifacts."""

    def log_logged_model(
        self, run_id: str, local_dir: str, name: str, tags: Mapping[str, str]
    ) -> "ModelSource":
        """Store a saved model as a LoggedModel output of the run (MLflow 3); return its source."""

    @property
    def unity_catalog(self) -> bool:
        """Tell whether models are registered in Databricks Unity Catalog."""

    def register(
        self, name: str, run_id: str, source: "ModelSource", local_dir: str
    ) -> "Registered":
        """Create a version of registered model `name` from `source` (saved in `local_dir`)."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model version is registered from, and what it is tagged with."""

    uri: str
    """`runs:/<run>/<path>`, or `models:/<model id>` for a LoggedModel."""
    tags: Mapping[str, str]
    model_id: str | None = None


class RunInfos(BoundedCache[tuple[str, str], dict[str, Any]]):
    """Runs' artifact URIs and experiments by (server, run id): they never change for a run.

    Steps sharing a run (unified mode) then upload their outputs without asking for it again,
    and a step whose run was just created (nested, mapped) without asking at all.
    """

    def remember(self, uri: str, run_id: str, artifact_uri: str, experiment_id: str) -> None:
        """Keep what a run's creation answered."""
        self.put((uri, run_id), {"artifact_uri": artifact_uri, "experiment_id": experiment_id})


DATASET_CONFLICTS = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")
"""How SQLite, PostgreSQL and MySQL refuse a second insert of the same dataset."""
DATASET_TRIES = 3


def log_inputs(
    publisher: Publisher, run_id: str, datasets: list["DatasetInput"], turn: threading.Lock
) -> None:
    """Record dataset entries on a run, again if another writer created one of them meanwhile.

    MLflow's store looks a dataset up, then inserts it: two steps recording the same dataset at
    once (one's output, the next one's input) make one insert fail; the next try finds it.
    Within a process the writes take `turn`; steps in other processes (pods) may still collide.
    """
    for attempt in range(1, DATASET_TRIES + 1):
        try:
            with turn:
                publisher.log_inputs(run_id, datasets)
            return
        except Exception as error:
            if attempt == DATASET_TRIES or not any(c in str(error) for c in DATASET_CONFLICTS):
                raise


@dataclass
class LocalPublisher:
    """A database or file store: a client bound to its URI needs nothing from the process."""

    uri: str

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def log_inputs(self, run_id: str, datasets: list["DatasetInput"]) -> None:
        """Record dataset entries on a run."""
        self._client().log_inputs(run_id, datasets=datasets)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag of a run."""
        self._client().set_tag(run_id, key, value, synchronous=True)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files under `artifact_path` of the run's artifacts."""
        self._client().log_artifacts(run_id, local_dir, artifact_path)

    def log_logged_model(
        self, run_id: str, local_dir: str, name: str, tags: Mapping[str, str]
    ) -> "ModelSource":
        """Store a saved model as a LoggedModel output of the run (MLflow 3); return its source.

        The source is the model's files, not `models:/<id>`: MLflow's database registry looks
        such an id up in the process's own tracking store, which is not this one.
        """
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        client = self._client()
        experiment_id = client.get_run(run_id).info.experiment_id
        model = client.create_logged_model(
            experiment_id, name=name, source_run_id=run_id, tags=dict(tags)
        )
        client.log_model_artifacts(model.model_id, local_dir)
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        return ModelSource(model.artifact_location, tags, model.model_id)

    unity_catalog = False

    def register(self, name: str, run_id: str, source: ModelSource, local_dir: str) -> "Registered":
        """Create a version of registered model `name` from `source`; return it."""
        return _register(self._client(), name, run_id, source)


@dataclass
class RestPublisher:
    """A tracking server over its REST API, with the tracker's credentials and time limits."""

    rest: RestClient
    runs: RunInfos = field(default_factory=RunInfos)
    """What it knows of runs: shared by the publishers of a process, so a run is asked once."""

    def log_inputs(self, run_id: str, datasets: list["DatasetInput"]) -> None:
        """Record dataset entries on a run."""
        entries = [_body(d.to_proto()) for d in datasets]
        self.rest.request("POST", LOG_INPUTS, json={"run_id": run_id, "datasets": entries})

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag of a run."""
        self.rest.set_tag(run_id, key, value)

    def _run_info(self, run_id: str) -> dict[str, Any]:
        key = (self.rest.connection.uri, run_id)
        info = self.runs.get(key)
        if info is None:
            info = self.rest.request("GET", GET_RUN, params={"run_id": run_id})["run"]["info"]
            self.runs.put(key, info)
        return info

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files under the run's `artifact_path`."""
        self._upload(self._run_info(run_id)["artifact_uri"], local_dir, artifact_path)

    def log_logged_model(
        self, run_id: str, local_dir: str, name: str, tags: Mapping[str, str]
    ) -> "ModelSource":
        """Store a saved model as a LoggedModel output of the run (MLflow 3); return its source."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus, LoggedModelTag
        from mlflow.protos.service_pb2 import CreateLoggedModel, FinalizeLoggedModel, LogOutputs

        create = CreateLoggedModel(
            experiment_id=self._run_info(run_id)["experiment_id"], name=name,
            source_run_id=run_id, tags=[LoggedModelTag(k, v).to_proto() for k, v in tags.items()],
        )  # fmt: skip
        created = self.rest.request("POST", LOGGED_MODELS, json=_body(create))
        info = created["model"]["info"]
        model_id = str(info["model_id"])
        self._upload(info["artifact_uri"], local_dir, "")
        ready = FinalizeLoggedModel(model_id=model_id, status=LoggedModelStatus.READY.to_proto())  # type: ignore[no-untyped-call]
        self.rest.request("PATCH", f"{LOGGED_MODELS}/{model_id}", json=_body(ready))
        output = LogOutputs(run_id=run_id, models=[LoggedModelOutput(model_id, 0).to_proto()])
        self.rest.request("POST", LOG_OUTPUTS, json=_body(output))
        return ModelSource(f"models:/{model_id}", tags, model_id)

    def _upload(self, artifact_uri: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files; through the server's proxy where it has one."""
        if not artifact_uri.startswith(PROXIED_SCHEME):
            # An object store or path the client writes to directly, with its own credentials.
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            repository = get_artifact_repository(artifact_uri)
            repository.log_artifacts(local_dir, artifact_path or None)  # type: ignore[no-untyped-call]
            return
        from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

        root = MlflowArtifactsRepository.resolve_uri(artifact_uri, self.rest.connection.uri)  # type: ignore[no-untyped-call]
        for folder, _, names in os.walk(local_dir):
            relative = os.path.relpath(folder, local_dir)
            target = artifact_path if relative == "." else posixpath.join(artifact_path, relative)
            for name in names:
                with open(os.path.join(folder, name), "rb") as data:
                    path = posixpath.join("/", target, name)
                    self.rest.request("PUT", path, host=root, data=data)

    @property
    def unity_catalog(self) -> bool:
        """Tell whether models are registered in Databricks Unity Catalog."""
        return self.rest.connection.unity_catalog

    def register(self, name: str, run_id: str, source: ModelSource, local_dir: str) -> "Registered":
        """Create a version of registered model `name` from `source` (saved in `local_dir`)."""
        if self.unity_catalog:
            return _register(UnityCatalog(self.rest.connection, local_dir), name, run_id, source)
        return _register(self, name, run_id, source)

    def create_registered_model(self, name: str) -> None:
        """Create a registered model (MlflowException RESOURCE_ALREADY_EXISTS if it exists)."""
        self.rest.request("POST", CREATE_REGISTERED_MODEL, json={"name": name})

    def create_model_version(
        self, name: str, source: str, run_id: str, tags: Mapping[str, str], **model: str
    ) -> "Registered":
        """Create a model version tagged with `tags` (of the LoggedModel `model_id=`, if given)."""
        body = {
            "name": name, "source": source, "run_id": run_id,
            "tags": [{"key": key, "value": value} for key, value in tags.items()], **model,
        }  # fmt: skip
        version = self.rest.request("POST", CREATE_MODEL_VERSION, json=body)["model_version"]
        return Registered(version["name"], str(version["version"]))


@dataclass(frozen=True)
class UnityCatalog:
    """Databricks Unity Catalog's registry, through MLflow's client (its own REST API and storage).

    MLflow's client uploads a version's files from `local_dir` to the storage location the
    catalog gives it, with the temporary credentials the catalog hands out, then finalizes the
    version. Its workspace credentials come from the connection held while outputs are sent.
    """

    connection: "Connection"
    local_dir: str

    def _client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(self.connection.uri, registry_uri=self.connection.registry_uri)

    def create_registered_model(self, name: str) -> None:
        """Create a registered model (MlflowException RESOURCE_ALREADY_EXISTS if it exists)."""
        self._client().create_registered_model(name)

    def create_model_version(
        self, name: str, source: str, run_id: str, tags: Mapping[str, str], **model: str
    ) -> Any:
        """Create a version from the saved files, without the LoggedModel's id.

        MLflow's Unity Catalog client would look the LoggedModel up in the process's tracking
        store, which after the step is not necessarily the workspace; `source` names it.
        """
        return create_model_version_from_files(
            self._client(), name, source, run_id, dict(tags), self.local_dir
        )


def _body(message: Any) -> Any:
    """Return a protobuf message as the JSON body MLflow's REST API takes."""
    from mlflow.utils.proto_json_utils import message_to_json

    return json.loads(message_to_json(message))


@dataclass(frozen=True)
class Registered:
    """A registered model version."""

    name: str
    version: str


def _register(client: Any, name: str, run_id: str, source: ModelSource) -> "Registered":
    """Create the registered model if it is new, then a version of it from `source`."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    model = {"model_id": source.model_id} if source.model_id else {}
    version = client.create_model_version(name, source.uri, run_id, tags=dict(source.tags), **model)
    return Registered(version.name, str(version.version))


def publisher(connection: "Connection", runs: RunInfos | None = None) -> Publisher:
    """Return the publisher for the connection's tracking store (sharing `runs` if given)."""
    if connection.is_remote:
        return RestPublisher(RestClient(connection), runs if runs is not None else RunInfos())
    return LocalPublisher(connection.uri)
