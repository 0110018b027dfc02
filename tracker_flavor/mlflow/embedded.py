"""Where the embedded MLflow store lives: a SQLite file and artifacts in the artifact store."""

import os
from pathlib import Path

from tracker_flavor.mlflow.sqlite_store import LocalStores

BACKEND_FILENAME = "mlflow.db"
ARTIFACTS_DIRECTORY = "mlflow_artifacts"


def embedded_database(artifact_store_path: str) -> Path:
    """Return the SQLite file of the embedded store inside a local artifact store."""
    return Path(artifact_store_path, BACKEND_FILENAME).resolve()


def embedded_tracking_uri(artifact_store_path: str, stores: LocalStores) -> str:
    """Return the SQLite tracking URI of the embedded store, created first if it is missing.

    Raises sqlite_store.StoreSchemaError if the store needs a repair.
    """
    path = embedded_database(artifact_store_path)
    stores.prepare(path)
    return f"sqlite:///{path}"


def is_embedded_uri(uri: str, artifact_store_path: str) -> bool:
    """Tell whether `uri` is the embedded store's (e.g. left in MLFLOW_TRACKING_URI by MLflow)."""
    return uri == f"sqlite:///{embedded_database(artifact_store_path)}"


def embedded_artifact_location(artifact_store_path: str) -> str:
    """Return the artifact root (a `file:` URI) for experiments of the embedded store."""
    path = os.path.abspath(os.path.join(artifact_store_path, ARTIFACTS_DIRECTORY))
    os.makedirs(path, exist_ok=True)
    return f"file://{path}"
