import pytest
from pydantic import ValidationError
from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
    MLFlowExperimentTrackerConfig,
)

from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.config.settings import MLflowPlusSettings

pytestmark = pytest.mark.unit


def test_accepts_every_key_of_the_builtin_flavor():
    assert set(MLFlowExperimentTrackerConfig.model_fields) <= set(MLflowPlusConfig.model_fields)
    assert set(MLflowPlusSettings.model_fields) <= set(MLflowPlusConfig.model_fields)


def test_unauthenticated_server_is_allowed():
    # The built-in flavor refuses this ("requires exactly one authentication method").
    assert MLflowPlusConfig(tracking_uri="http://127.0.0.1:5001").tracking_token is None


def test_secret_references_are_not_resolved_by_validation():
    config = MLflowPlusConfig(
        tracking_uri="https://mlflow.example.com",
        tracking_username="{{mlflow.username}}",
        tracking_password="{{mlflow.password}}",
    )
    assert config.authentication_methods() == ["tracking_username+tracking_password"]
    assert config.required_secrets


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tracking_uri": "ftp://h"}, "tracking_uri 'ftp://h' has the unknown scheme"),
        ({"tracking_uri": "http://h", "tracking_username": "u"}, "tracking_password is missing"),
        ({"tracking_uri": "http://h", "tracking_password": "p"}, "tracking_username is missing"),
        ({"databricks_host": "adb.net"}, "databricks_host applies only to Databricks"),
        ({"enable_unity_catalog": True}, "set tracking_uri=databricks"),
        ({"databricks_workspace_id": "1"}, "databricks_workspace_id applies only to Databricks"),
        (
            {"databricks_workspace_id": "adb-1"},
            "databricks_workspace_id 'adb-1' is not a workspace",
        ),
        (
            {
                "tracking_uri": "databricks",
                "databricks_host": "h",
                "tracking_token": "t",
                "enable_unity_catalog": True,
                "log_model": "m",
                "registered_model_name": "ml.m",
            },
            "registered_model_name 'ml.m' is not a Unity Catalog name",
        ),
        ({"tracking_uri": "databricks", "tracking_token": "t"}, "databricks_host is missing"),
        ({"tracking_uri": "databricks", "databricks_host": "h"}, "Databricks needs credentials"),
        (
            {"tracking_uri": "databricks", "databricks_host": "h", "databricks_client_id": "i"},
            "databricks_client_secret is missing",
        ),
        (
            {
                "tracking_uri": "http://h",
                "tracking_token": "t",
                "tracking_username": "u",
                "tracking_password": "p",
            },
            "several authentication methods",
        ),
        ({"experiment_name": ""}, "experiment_name must not be empty"),
        ({"tags": ["n"]}, "tags must be a mapping"),
    ],
)
def test_bad_config_names_the_field_and_the_fix(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        MLflowPlusConfig(**kwargs)


def test_errors_do_not_echo_credentials():
    with pytest.raises(ValidationError) as error:
        MLflowPlusConfig(tracking_uri="http://h", tracking_password="hunter2-secret")
    assert "hunter2-secret" not in str(error.value)


def test_settings_values_are_the_explicit_component_defaults():
    config = MLflowPlusConfig(tracking_uri="http://h", nested=True, tags={"team": "a"})
    assert config.settings_values() == {"nested": True, "tags": {"team": "a"}}


def test_non_string_tag_values_become_strings_as_the_builtin_s_do():
    config = MLflowPlusConfig(tags={"epochs": 10, "lr": 0.5, "final": True, "team": "a"})
    assert config.tags == {"epochs": "10", "lr": "0.5", "final": "True", "team": "a"}
