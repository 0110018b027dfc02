"""MLflow writes after a step, made without touching the process's MLflow environment.

Outputs are sent once ZenML has published the step, on the tracker's watcher thread, when the
step's environment (tracking URI, credentials) is no longer applied and other code of the
process may run. So, like the watcher's settling client (detached.py), this carries the
server's address and credentials in itself: MLflow's REST stores with fixed credentials for a
server, a client bound to the URI for a database or file store.
"""

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tracker_flavor.detached import host_creds
from tracker_flavor.uris import is_remote_uri

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

PROXIED_SCHEME = "mlflow-artifacts:"
"""Artifact URIs of a server that proxies uploads (`mlflow server --artifacts-destination`)."""


class Publisher(Protocol):
    """What sending a step's outputs needs of MLflow."""

    def log_inputs(self, run_id: str, datasets: list["DatasetInput"]) -> None:
        """Record dataset entries on a run."""

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag of a run."""

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files under `artifact_path` of the run's artifacts."""

    def register(self, name: str, run_id: str, path: str, tags: Mapping[str, str]) -> Any:
        """Create a version of registered model `name` from the run's `path`; return it."""


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

    def register(self, name: str, run_id: str, path: str, tags: Mapping[str, str]) -> Any:
        """Create a version of registered model `name` from the run's `path`; return it."""
        return _register(self._client(), name, run_id, path, tags)


@dataclass
class RestPublisher:
    """A tracking server: MLflow's REST stores and proxied uploads with fixed credentials."""

    uri: str
    variables: Mapping[str, str]
    _artifact_uris: dict[str, str] = field(default_factory=dict)

    def _creds(self, host: str | None = None) -> Any:
        return host_creds(host or self.uri, dict(self.variables))

    def _tracking(self) -> Any:
        from mlflow.store.tracking.rest_store import RestStore

        return RestStore(lambda: self._creds())  # type: ignore[no-untyped-call]

    def log_inputs(self, run_id: str, datasets: list["DatasetInput"]) -> None:
        """Record dataset entries on a run."""
        self._tracking().log_inputs(run_id, datasets=datasets)

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        """Set one tag of a run."""
        from mlflow.entities import RunTag

        self._tracking().set_tag(run_id, RunTag(key, value))

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        """Upload a local folder's files; through the server's proxy where it has one."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        from mlflow.store.artifact.mlflow_artifacts_repo import MlflowArtifactsRepository

        if run_id not in self._artifact_uris:
            self._artifact_uris[run_id] = self._tracking().get_run(run_id).info.artifact_uri
        artifact_uri = self._artifact_uris[run_id]
        if not artifact_uri.startswith(PROXIED_SCHEME):
            # An object store or path the client writes to directly, with its own credentials.
            repository = get_artifact_repository(artifact_uri)
            repository.log_artifacts(local_dir, artifact_path)  # type: ignore[no-untyped-call]
            return
        root = MlflowArtifactsRepository.resolve_uri(artifact_uri, self.uri)  # type: ignore[no-untyped-call]
        for folder, _, names in os.walk(local_dir):
            relative = os.path.relpath(folder, local_dir)
            target = artifact_path if relative == "." else posixpath.join(artifact_path, relative)
            for name in names:
                self._put(root, posixpath.join(target, name), os.path.join(folder, name))

    def _put(self, root: str, path: str, local_file: str) -> None:
        """Upload one file to the server's artifact proxy, as MLflow's own client does."""
        from mlflow.utils.request_utils import augmented_raise_for_status
        from mlflow.utils.rest_utils import http_request

        with open(local_file, "rb") as data:
            response = http_request(
                self._creds(root), posixpath.join("/", path), "PUT", data=data,
                max_retries=int(self.variables["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]),
                timeout=int(self.variables["MLFLOW_HTTP_REQUEST_TIMEOUT"]),
            )  # type: ignore[no-untyped-call]  # fmt: skip
        augmented_raise_for_status(response)  # type: ignore[no-untyped-call]

    def register(self, name: str, run_id: str, path: str, tags: Mapping[str, str]) -> Any:
        """Create a version of registered model `name` from the run's `path`; return it."""
        from mlflow.store.model_registry.rest_store import RestStore

        store = RestStore(lambda: self._creds())  # type: ignore[no-untyped-call]
        return _register(_RegistryClient(store), name, run_id, path, tags)


@dataclass
class _RegistryClient:
    """A registry store with the two calls of MlflowClient that registering needs."""

    store: Any

    def create_registered_model(self, name: str) -> Any:
        return self.store.create_registered_model(name)

    def create_model_version(self, name: str, source: str, run_id: str, tags: Any) -> Any:
        from mlflow.entities.model_registry import ModelVersionTag

        version_tags = [ModelVersionTag(k, v) for k, v in tags.items()]  # type: ignore[no-untyped-call]
        return self.store.create_model_version(name, source, run_id, tags=version_tags)


def _register(client: Any, name: str, run_id: str, path: str, tags: Mapping[str, str]) -> Any:
    """Create the registered model if it is new, then a version of it from the run's `path`."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.create_model_version(name, f"runs:/{run_id}/{path}", run_id, tags=dict(tags))


def publisher(uri: str, variables: Mapping[str, str]) -> Publisher:
    """Return the publisher for the tracking store at `uri` with the tracker's `variables`."""
    if is_remote_uri(uri):
        return RestPublisher(uri, variables)
    return LocalPublisher(uri)
