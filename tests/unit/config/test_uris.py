import re

import pytest

from tracker_flavor.config.uris import (
    check_tracking_uri,
    is_databricks_uri,
    is_remote_uri,
    model_version_url,
    normalize_host,
    redact_credentials,
    run_url,
    strip_credentials,
    workspace_id_of,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5001",
        "https://mlflow.example.com/prefix",
        "databricks",
        "sqlite:////tmp/mlflow.db",
        "postgresql+psycopg2://mlflow@db/mlflow",
        "sqlite:///relative.db",
        "sqlite:///:memory:",
        "file:///tmp/mlruns",
    ],
)
def test_valid_tracking_uris(uri):
    check_tracking_uri(uri)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host", "unknown scheme 'ftp'"),
        ("127.0.0.1:5000", "no scheme"),
        ("mlflow.example.com", "no scheme"),
        ("http:///path", "no host"),
        ("http://127.0.0.1:99999", "port '99999', which is not a port number"),
        ("postgresql://db:http/mlflow", "port 'http', which is not a port number"),
        ("https://bob:s3cret@mlflow.example.com", "tracking_password='{{mlflow.password}}'"),
        ("https://bob@mlflow.example.com", "tracking_username='{{mlflow.username}}'"),
        ("postgresql://u:s3cret@db/mlflow", "tracking_uri='{{mlflow_db.uri}}'"),
        ("sqlite:////does/not/exist/x.db", "in /does/not/exist, which does not exist"),
    ],
)
def test_invalid_tracking_uris_name_the_field_and_the_fix(uri, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        check_tracking_uri(uri)
    assert "tracking_uri" in str(error.value) and "s3cret" not in str(error.value)


def test_sqlite_file_in_an_existing_directory_is_accepted(tmp_path):
    check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")


def test_credentials_are_stripped():
    assert strip_credentials("https://bob:s3cret@host:5000/x") == "https://host:5000/x"
    assert strip_credentials("postgresql://u:pw@db/m") == "postgresql://db/m"
    assert strip_credentials("http://host:5000") == "http://host:5000"
    assert "s3cret" not in strip_credentials("http://bob:s3cret@h")


def test_credentials_are_redacted_from_messages():
    message = "API request to https://bob:s3cret@host:5000/api/2.0/x failed; see http://h/y"
    assert redact_credentials(message) == (
        "API request to https://host:5000/api/2.0/x failed; see http://h/y"
    )


def test_kinds_of_uri():
    assert is_databricks_uri("databricks") and is_databricks_uri("databricks://profile")
    assert is_remote_uri("https://h") and not is_remote_uri("sqlite:///x.db")


def test_run_links():
    assert run_url("http://h:5000/", "3", "abc") == (
        "http://h:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    assert (
        run_url("https://adb.net", "3", "abc", databricks=True)
        == "https://adb.net/ml/experiments/3/runs/abc"
    )


def test_a_databricks_link_names_its_workspace_and_azure_hosts_carry_theirs():
    assert run_url("https://h", "3", "abc", databricks=True, workspace_id="42").endswith(
        "/ml/experiments/3/runs/abc?o=42"
    )
    assert workspace_id_of("adb-1234567890123456.7.azuredatabricks.net/") == "1234567890123456"
    assert workspace_id_of("https://dbc-1a2b.cloud.databricks.com") is None
    assert workspace_id_of("https://adb-12.7.azuredatabricks.net.evil.com") is None


def test_model_version_links_open_the_registry_they_are_in():
    assert model_version_url("http://mlflow:5000/", "churn model", "4") == (
        "http://mlflow:5000/#/models/churn%20model/versions/4"
    )
    assert model_version_url("https://h", "churn", "4", databricks=True, workspace_id="42") == (
        "https://h/ml/models/churn/versions/4?o=42"
    )
    uc = model_version_url("https://h/", "ml.prod.churn", "4", databricks=True, unity_catalog=True)
    assert uc == "https://h/explore/data/models/ml/prod/churn/version/4"
    assert model_version_url(
        "https://h", "ml.prod.churn", "4", databricks=True, unity_catalog=True, workspace_id="42"
    ) == "https://h/explore/data/models/ml/prod/churn/version/4?o=42"  # fmt: skip


def test_hosts_are_normalised():
    assert normalize_host("adb-1.azuredatabricks.net/") == "https://adb-1.azuredatabricks.net"
    assert normalize_host("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
