import pytest
from pydantic import ValidationError

from tracker_flavor.config.settings import MLflowPlusSettings

pytestmark = pytest.mark.unit


def test_defaults():
    settings = MLflowPlusSettings()
    assert settings.experiment_name is None and settings.run_name is None
    assert settings.nested is False and settings.tags == {}
    assert settings.log_step_parameters is True and settings.autolog is False


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ValidationError, match="'experiment'.*did you mean 'experiment_name'"):
        MLflowPlusSettings(experiment="x")


@pytest.mark.parametrize("field", ["experiment_name", "run_name"])
def test_blank_names_are_rejected(field):
    with pytest.raises(ValidationError, match=f"{field} must not be empty"):
        MLflowPlusSettings(**{field: "  "})


def test_non_string_tags_are_converted_like_mlflow_set_tag():
    assert MLflowPlusSettings(tags={"epochs": 10, "team": "a"}).tags == {
        "epochs": "10",
        "team": "a",
    }


def test_experiment_name_longer_than_mlflow_allows_is_rejected():
    MLflowPlusSettings(experiment_name="x" * 500)
    with pytest.raises(ValidationError, match="experiment_name is 10000 characters long; MLflow"):
        MLflowPlusSettings(experiment_name="x" * 10_000)


def test_parent_run_id_must_be_an_mlflow_run_id():
    run_id = "0123456789abcdef0123456789abcdef"
    assert MLflowPlusSettings(parent_run_id=run_id).parent_run_id == run_id
    for wrong in ("my-training-run", run_id.upper(), f"http://host/#/runs/{run_id}"):
        with pytest.raises(ValidationError, match="parent_run_id .* is not an MLflow run id"):
            MLflowPlusSettings(parent_run_id=wrong)


def test_unity_catalog_takes_only_three_level_model_names():
    MLflowPlusSettings(
        log_model="m", registered_model_name="main.ml.churn"
    ).check_unity_catalog_name()
    for name in ("churn", "ml.churn", "main..churn", "a.b.c.d"):
        with pytest.raises(ValueError, match="<catalog>.<schema>.<model>"):
            MLflowPlusSettings(log_model="m", registered_model_name=name).check_unity_catalog_name()
