import pytest

from tracker_flavor.detached import RestSettler, detached_client, host_creds

pytestmark = pytest.mark.unit

LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "7", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}


def test_server_credentials_and_tls_come_from_the_variables_not_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "from-the-environment")
    creds = host_creds(
        "https://mlflow.example.com",
        {
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": "pw",
            "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem",
        },
    )
    assert (creds.host, creds.username, creds.password) == (
        "https://mlflow.example.com",
        "alice",
        "pw",
    )
    assert creds.server_cert_path == "/ca.pem" and not creds.ignore_tls_verification
    assert host_creds("http://h", {"MLFLOW_TRACKING_INSECURE_TLS": "true"}).ignore_tls_verification


def test_databricks_goes_to_the_workspace_host_with_its_token():
    creds = host_creds(
        "databricks", {"DATABRICKS_HOST": "https://adb.net", "DATABRICKS_TOKEN": "dapi"}
    )
    assert (creds.host, creds.token, creds.username) == ("https://adb.net", "dapi", None)


def test_servers_get_a_rest_client_with_the_tracker_time_limits():
    client = detached_client("http://h:5000", LIMITS)
    assert isinstance(client, RestSettler)
    assert (client.timeout, client.max_retries) == (7, 1)


def test_local_stores_get_mlflow_own_client(tmp_path):
    from mlflow import MlflowClient

    assert isinstance(detached_client(f"sqlite:///{tmp_path}/m.db", LIMITS), MlflowClient)
