"""A step output logged as an MLflow model of the step's run, and optionally registered."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tracker_flavor.mlflow.internals import has_logged_models
from tracker_flavor.runs import tags
from tracker_flavor.watcher.publisher import ModelSource

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


class UnregistrableModel(ValueError):
    """The registry refuses the saved model (Unity Catalog: no signature)."""


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


def log_model(
    publisher: "Publisher", run_id: str, model: Any, registered_name: str | None, ids: ModelIds
) -> Any:
    """Save `model` with its MLflow flavor, store it with the run; register it if asked.

    On MLflow 3 it becomes a LoggedModel of the run (tagged with `ids`), as MLflow's own
    `log_model` makes it; on MLflow 2 it goes into the run's `model/`. Returns the registered
    version (tagged with `ids`), or None. The flavor's own pip requirements are written as they
    are: MLflow's inference would import the model in a subprocess, seconds per model. Saved
    locally and uploaded, so the run's status and the process's MLflow state stay as they are.
    """
    import importlib
    import os
    import tempfile

    module_name, argument = flavor_for(model)
    module = importlib.import_module(module_name)
    with tempfile.TemporaryDirectory(prefix="mlflow-plus-model-") as local:
        path = os.path.join(local, MODEL_NAME)
        requirements = module.get_default_pip_requirements()
        module.save_model(path=path, pip_requirements=requirements, **{argument: model})
        if registered_name is not None and publisher.unity_catalog:
            require_signature(path, module_name)
        if has_logged_models():
            source = publisher.log_logged_model(run_id, path, MODEL_NAME, ids.tags())
        else:
            publisher.log_artifacts(run_id, path, MODEL_NAME)
            source = ModelSource(f"runs:/{run_id}/{MODEL_NAME}", ids.tags())
        if registered_name is None:
            return None
        return publisher.register(registered_name, run_id, source, path)


def require_signature(path: str, module_name: str) -> None:
    """Refuse a saved model Unity Catalog cannot take: one without input and output schemas."""
    from mlflow.models import Model

    signature = Model.load(path).signature
    if signature is not None and signature.inputs is not None and signature.outputs is not None:
        return
    raise UnregistrableModel(
        "Unity Catalog registers only models whose signature gives inputs and outputs, and "
        f"MLflow found none for this one. Give a PythonModel's predict type hints, or log the "
        f"model in the step with {module_name}.log_model(..., signature=mlflow.models."
        "infer_signature(X, model.predict(X)), registered_model_name=...) instead of "
        "registered_model_name."
    )


def registrable_source(client: Any, source: str) -> str:
    """Return the source a version loads from: `models:/<id>` for a run's LoggedModel.

    MLflow 3 keeps a run's model (`log_model(name=...)`, autologging) as a LoggedModel, not in
    the run's artifacts, so a version registered from `runs:/<run>/<path>` finds no files. As
    MLflow's own `register_model`: files in the run at `path` win, else the run's LoggedModel
    named `path` logged last. Other sources, and everything on MLflow 2, stay as they are.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    if not has_logged_models() or not RunsArtifactRepository.is_runs_uri(source):  # type: ignore[no-untyped-call]
        return source
    run_id, path = RunsArtifactRepository.parse_runs_uri(source)  # type: ignore[no-untyped-call]
    run = client.get_run(run_id)
    if get_artifact_repository(run.info.artifact_uri).list_artifacts(path or None):
        return source
    outputs = run.outputs.model_outputs if run.outputs else []
    steps = {output.model_id: output.step for output in outputs}
    named = [
        model_id for model_id in steps if client.get_logged_model(model_id).name == (path or "")
    ]
    if not named:
        return source
    return f"models:/{max(named, key=lambda model_id: steps[model_id])}"
