import json

import pytest

from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.watcher import after_step as published
from tracker_flavor.watcher import lineage, models

pytestmark = pytest.mark.unit

REF = lineage.ArtifactRef(
    id="5b0c8c4e-0000-4000-8000-000000000001", name="frame", version="3", uri="/s/frame",
    role="input", slot="data",
)  # fmt: skip


def test_a_dataset_entry_names_the_zenml_artifact_version():
    (entry,) = lineage.dataset_inputs("train", [REF])
    assert entry.dataset.name == "frame" and entry.dataset.digest == REF.id
    assert entry.dataset.source_type == "zenml"
    assert json.loads(entry.dataset.source) == {
        "artifact_version_id": REF.id, "name": "frame", "version": "3", "uri": "/s/frame",
    }  # fmt: skip
    assert {t.key: t.value for t in entry.tags} == {
        "mlflow.data.context": "input", "zenml.step_name": "train", "zenml.input_name": "data",
    }  # fmt: skip


def test_the_entry_passes_mlflows_own_validation():
    from mlflow.utils.validation import _validate_dataset_inputs

    _validate_dataset_inputs(lineage.dataset_inputs("train", [REF]))


def test_flavors_are_found_by_the_models_package():
    from mlflow.pyfunc.model import PythonModel
    from sklearn.linear_model import LogisticRegression

    class Custom(PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    assert models.flavor_for(LogisticRegression()) == ("mlflow.sklearn", "sk_model")
    assert models.flavor_for(Custom()) == ("mlflow.pyfunc", "python_model")
    with pytest.raises(models.UnsaveableModel, match="no MLflow model flavor saves a builtins.str"):
        models.flavor_for("text")


def test_model_version_tags():
    assert models.ModelIds("r", "s", "a").tags() == {
        "zenml.pipeline_run_id": "r", "zenml.step_run_id": "s", "zenml.artifact_version_id": "a",
    }  # fmt: skip


def test_nothing_is_sent_after_the_step_when_every_option_is_off():
    assert published.wanted(MLflowPlusSettings())
    assert not published.wanted(MLflowPlusSettings(track_reports=False, lineage=False))
