"""Where the embedded MLflow store lives: a SQLite file and artifacts in the artifact store."""

import os

BACKEND_FILENAME = "mlflow.db"
ARTIFACTS_DIRECTORY = "mlflow_artifacts"


def embedded_tracking_uri(artifact_store_path: str) -> str:
    """Return the SQLite tracking URI of the embedded store inside a local artifact store."""
    path = os.path.abspath(os.path.join(artifact_store_path, BACKEND_FILENAME))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return f"sqlite:///{path}"


def embedded_artifact_location(artifact_store_path: str) -> str:
    """Return the artifact root (a `file:` URI) for experiments of the embedded store."""
    path = os.path.abspath(os.path.join(artifact_store_path, ARTIFACTS_DIRECTORY))
    os.makedirs(path, exist_ok=True)
    return f"file://{path}"
