"""A step output logged as an MLflow model of the step's run, and optionally registered."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker_flavor.runs import tags

if TYPE_CHECKING:
    from tracker_flavor.watcher.publisher import Publisher

MODEL_NAME = "model"
"""The logged model's name (artifact folder) in the run."""
ARTIFACT_VERSION_ID = "zenml.artifact_version_id"

FLAVORS: dict[str, tuple[str, str]] = {
    "sklearn": ("mlflow.sklearn", "sk_model"),
    "torch": ("mlflow.pytorch", "pytorch_model"),
    "xgboost": ("mlflow.xgboost", "xgb_model"),
    "lightgbm": ("mlflow.lightgbm", "lgb_model"),
    "catboost": ("mlflow.catboost", "cb_model"),
    "statsmodels": ("mlflow.statsmodels", "statsmodels_model"),
    "keras": ("mlflow.tensorflow", "model"),
    "tensorflow": ("mlflow.tensorflow", "model"),
}
"""Top-level package of a model's class → (MLflow flavor module, its save_model argument)."""
PYFUNC = ("mlflow.pyfunc", "python_model")


class UnsaveableModel(ValueError):
    """No MLflow model flavor can save the output."""


@dataclass(frozen=True)
class ModelIds:
    """The ZenML ids a registered model version is tagged with."""

    pipeline_run_id: str
    step_run_id: str
    artifact_version_id: str

    def tags(self) -> dict[str, str]:
        """Return the model version's tags."""
        return {
            tags.PIPELINE_RUN_ID: self.pipeline_run_id,
            tags.STEP_RUN_ID: self.step_run_id,
            ARTIFACT_VERSION_ID: self.artifact_version_id,
        }


def flavor_for(model: Any) -> tuple[str, str]:
    """Return (flavor module, argument name) that saves `model`; raise UnsaveableModel."""
    from mlflow.pyfunc.model import PythonModel

    if isinstance(model, PythonModel):
        return PYFUNC
    for cls in type(model).__mro__:
        package = cls.__module__.split(".")[0]
        if package in FLAVORS:
            return FLAVORS[package]
    raise UnsaveableModel(
        f"no MLflow model flavor saves a {type(model).__module__}.{type(model).__qualname__}"
    )


def model_version_url(ui_base: str, name: str, version: str) -> str:
    """Return the UI link of a registered model version."""
    from urllib.parse import quote

    return f"{ui_base.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


def log_model(
    publisher: "Publisher", run_id: str, model: Any, registered_name: str | None, ids: ModelIds
) -> Any:
    """Save `model` with its MLflow flavor into the run's `model/`; register it if asked.

    Returns the registered ModelVersion (tagged with `ids`), or None. Saved locally and
    uploaded like any artifact, so the run's status and the process's MLflow state stay as
    they are.
    """
    import importlib
    import os
    import tempfile

    module, argument = flavor_for(model)
    with tempfile.TemporaryDirectory(prefix="mlflow-plus-model-") as local:
        path = os.path.join(local, MODEL_NAME)
        importlib.import_module(module).save_model(path=path, **{argument: model})
        publisher.log_artifacts(run_id, path, MODEL_NAME)
    if registered_name is None:
        return None
    return publisher.register(registered_name, run_id, MODEL_NAME, ids.tags())
