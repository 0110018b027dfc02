"""A step's model: the flavor's own requirements, a LoggedModel on MLflow 3, a version that loads."""

from pathlib import Path

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc.model import PythonModel

from tracker_flavor.mlflow.internals import has_logged_models
from tracker_flavor.watcher import models
from tracker_flavor.watcher.publisher import LocalPublisher

pytestmark = pytest.mark.unit

IDS = models.ModelIds("pipeline-run", "step-run", "artifact-version")


class Threshold(PythonModel):  # type: ignore[misc]
    """A model any MLflow saves quickly (pyfunc, cloudpickle)."""

    def predict(self, context: object, model_input: list[list[float]], params: object = None):
        return [int(row[0] > 1.5) for row in model_input]


MODEL = Threshold()


def a_run(uri: str, folder: Path) -> str:
    """Start and end a run in a new experiment whose artifacts live in `folder`."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("models", artifact_location=folder.as_uri())
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_the_model_is_saved_with_its_flavors_requirements_and_registered_loadable(
    sqlite_uri, tmp_path
):
    run_id = a_run(sqlite_uri, tmp_path / "artifacts")
    client = MlflowClient(sqlite_uri, registry_uri=sqlite_uri)
    registered = models.log_model(LocalPublisher(sqlite_uri), run_id, MODEL, "churn", IDS)
    version = client.get_model_version("churn", registered.version)
    assert version.tags == IDS.tags()
    if has_logged_models():
        (output,) = client.get_run(run_id).outputs.model_outputs
        logged = client.get_logged_model(output.model_id)
        assert (logged.name, logged.source_run_id) == (models.MODEL_NAME, run_id)
        assert IDS.tags().items() <= logged.tags.items()
        # A database store's registry resolves `models:/<id>` in the process's own store.
        assert version.source == logged.artifact_location
        folder = mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path))
    else:
        assert version.source == f"runs:/{run_id}/{models.MODEL_NAME}"
        folder = client.download_artifacts(run_id, models.MODEL_NAME, str(tmp_path))
    # What the flavor declares, not MLflow's inference (a subprocess importing the model).
    requirements = (Path(folder) / "requirements.txt").read_text().split()
    assert sorted(requirements) == sorted(
        [f"mlflow=={mlflow.__version__}", *mlflow.pyfunc.get_default_pip_requirements()]
    )
    assert mlflow.pyfunc.load_model(folder).predict([[0.0], [3.0]]) == [0, 1]


def test_a_runs_source_of_a_logged_model_is_registered_from_the_logged_model(sqlite_uri, tmp_path):
    run_id = a_run(sqlite_uri, tmp_path / "artifacts")
    client = MlflowClient(sqlite_uri, registry_uri=sqlite_uri)
    assert models.registrable_source(client, "s3://bucket/model") == "s3://bucket/model"
    source = f"runs:/{run_id}/{models.MODEL_NAME}"
    assert models.registrable_source(client, source) == source  # nothing logged yet
    models.log_model(LocalPublisher(sqlite_uri), run_id, MODEL, None, IDS)
    if has_logged_models():
        (output,) = client.get_run(run_id).outputs.model_outputs
        assert models.registrable_source(client, source) == f"models:/{output.model_id}"
        assert models.registrable_source(client, f"runs:/{run_id}/other") == (
            f"runs:/{run_id}/other"
        )
    else:  # MLflow 2: the files are in the run, where the source points
        assert models.registrable_source(client, source) == source


class CatalogPublisher(LocalPublisher):
    """A store whose registry is Unity Catalog's, as far as the signature rule goes."""

    unity_catalog = True


class Echo(PythonModel):  # type: ignore[misc]
    """A model whose type hints give MLflow a signature with inputs and outputs."""

    def predict(self, model_input: list[str], params: dict | None = None) -> list[str]:
        return model_input


class Untyped(PythonModel):  # type: ignore[misc]
    """A model without type hints: MLflow infers no signature."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def model_outputs(uri: str, run_id: str) -> list[object]:
    """Return what the run holds as models: its LoggedModels (MLflow 3) or files (MLflow 2)."""
    run = MlflowClient(uri).get_run(run_id)
    if has_logged_models():
        return list(run.outputs.model_outputs if run.outputs else [])
    return MlflowClient(uri).list_artifacts(run_id)


def test_unity_catalog_refuses_a_model_without_a_signature_before_logging_it(sqlite_uri, tmp_path):
    run_id = a_run(sqlite_uri, tmp_path / "artifacts")
    publisher = CatalogPublisher(sqlite_uri)
    with pytest.raises(models.UnregistrableModel) as refused:
        models.log_model(publisher, run_id, Untyped(), "main.ml.untyped", IDS)
    assert "Unity Catalog registers only models whose signature gives inputs and outputs" in str(
        refused.value
    )
    assert "mlflow.pyfunc.log_model(..., signature=mlflow.models.infer_signature(" in str(
        refused.value
    )
    assert model_outputs(sqlite_uri, run_id) == []
    # Not registering, the model is logged as it is.
    assert models.log_model(publisher, run_id, Untyped(), None, IDS) is None
    assert len(model_outputs(sqlite_uri, run_id)) == 1


def test_unity_catalog_takes_a_model_whose_signature_gives_inputs_and_outputs(sqlite_uri, tmp_path):
    run_id = a_run(sqlite_uri, tmp_path / "artifacts")
    registered = models.log_model(CatalogPublisher(sqlite_uri), run_id, Echo(), "main.ml.e", IDS)
    assert (registered.name, registered.version) == ("main.ml.e", "1")
