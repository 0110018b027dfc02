"""A connection renders the MLflow environment, REST credentials and links from one place."""

import pytest
from pydantic import SecretStr

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.mlflow.connection import Connection, connect, unprotected
from tracker_flavor.mlflow.internals import Internals
from tracker_flavor.mlflow.rest import RestClient, settler
from tracker_flavor.mlflow.sqlite_store import LocalStores

pytestmark = pytest.mark.unit


def test_tls_and_limits_become_mlflow_variables_and_credentials_only_name_the_provider():
    connection = Connection(
        "https://mlflow.example.com", username="alice", password=SecretStr("pw"),
        ca_bundle="/ca.pem", limits=RequestLimits(7, 1),
    )  # fmt: skip
    assert connection.environment() == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "7",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        "MLFLOW_TRACKING_AUTH": "mlflow_plus",
        "MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem",
    }
    assert connection.authorization() == "Basic YWxpY2U6cHc="
    assert Connection("https://h", token=SecretStr("t")).authorization() == "Bearer t"
    assert "MLFLOW_TRACKING_AUTH" not in Connection("https://h").environment()
    assert connection.kind == "http" and connection.ui_base == "https://mlflow.example.com"


def test_databricks_goes_to_the_workspace_with_its_token_and_registry_and_no_variable_holds_it():
    connection = Connection(
        "databricks", token=SecretStr("dapi"), databricks_host="https://adb.net"
    )
    env = connection.environment()
    assert not [name for name in env if name.startswith("DATABRICKS_")]
    assert "dapi" not in env.values() and "MLFLOW_TRACKING_TOKEN" not in env
    # MLflow's SDK path reads credentials from the environment only: off.
    assert env["MLFLOW_REGISTRY_URI"] == "databricks" and env["MLFLOW_ENABLE_DB_SDK"] == "false"
    creds = connection.host_creds()
    assert (creds.host, creds.token, creds.username) == ("https://adb.net", "dapi", None)
    assert connection.experiment_name("exp") == "/Shared/exp"
    assert connection.link("1", "r") == "https://adb.net/ml/experiments/1/runs/r"


def test_the_registry_is_unity_catalogs_on_databricks_when_enabled_else_the_tracking_store():
    workspace = Connection("databricks", databricks_host="https://adb.net", unity_catalog=True)
    assert workspace.registry_uri == "databricks-uc"
    assert workspace.environment()["MLFLOW_REGISTRY_URI"] == "databricks-uc"
    assert Connection("http://127.0.0.1:5000", unity_catalog=True).registry_uri == (
        "http://127.0.0.1:5000"
    )


def test_databricks_links_name_the_configured_or_azure_workspace():
    azure = Connection("databricks", databricks_host="https://adb-123.4.azuredatabricks.net")
    assert azure.link("1", "r").endswith("/ml/experiments/1/runs/r?o=123")
    configured = Connection("databricks", databricks_host="https://x.cloud.databricks.com",
                            workspace_id="987")  # fmt: skip
    assert (
        configured.link("1", "r") == "https://x.cloud.databricks.com/ml/experiments/1/runs/r?o=987"
    )
    assert "?o=" not in Connection("http://h", workspace_id="987").link("1", "r").split("#")[0]
    catalog = Connection("databricks", databricks_host="https://x.cloud.databricks.com",
                         workspace_id="987", unity_catalog=True)  # fmt: skip
    assert catalog.model_link("ml.prod.churn", "2") == (
        "https://x.cloud.databricks.com/explore/data/models/ml/prod/churn/version/2?o=987"
    )
    assert configured.model_link("churn", "2").endswith("/ml/models/churn/versions/2?o=987")
    assert Connection("http://h", unity_catalog=True).model_link("a.b.c", "2") == (
        "http://h/#/models/a.b.c/versions/2"
    )


def test_rest_credentials_come_from_the_connection_not_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "from-the-environment")
    connection = Connection("https://h", username="alice", password=SecretStr("pw"))
    creds = connection.host_creds()
    assert (creds.host, creds.username, creds.password) == ("https://h", "alice", "pw")
    assert Connection("https://h", insecure_tls=True).host_creds().ignore_tls_verification


def test_the_watcher_gets_the_rest_client_of_the_connection_or_mlflow_own_for_files(sqlite_uri):
    from mlflow import MlflowClient

    limited = Connection("http://h:5000", limits=RequestLimits(7, 1))
    client = settler(limited)
    assert isinstance(client, RestClient) and client.connection is limited
    assert isinstance(settler(Connection(sqlite_uri)), MlflowClient)


def test_file_stores_are_allowed_and_local_links_go_to_the_ui_command():
    connection = Connection("file:///tmp/mlruns")
    assert connection.environment()["MLFLOW_ALLOW_FILE_STORE"] == "true"
    assert connection.link("0", "r") == (
        "http://127.0.0.1:5000/#/experiments/0/runs/r?workflowType=machine_learning"
    )


def test_requests_verify_and_authenticate_like_mlflow():
    assert Connection("https://h", token=SecretStr("t")).request_options() == {
        "verify": True, "cert": None, "headers": {"Authorization": "Bearer t"},
    }  # fmt: skip
    insecure = Connection("https://h", insecure_tls=True, username="u", password=SecretStr("p"))
    assert insecure.request_options() == {"verify": False, "cert": None, "auth": ("u", "p")}


def test_connect_reads_the_config_once_and_names_a_missing_certificate(tmp_path):
    config = MLflowPlusConfig(
        tracking_uri="http://10.0.0.1:5000", tracking_token="t", ui_url="http://ui:1"
    )
    stores = LocalStores(Internals(Once()))
    connection = connect(config, stores)
    assert connection.uri == "http://10.0.0.1:5000" and connection.ui_base == "http://ui:1"
    assert connection.token is not None and connection.token.get_secret_value() == "t"
    missing = MLflowPlusConfig(tracking_uri="https://h", tracking_ca_bundle=f"{tmp_path}/ca.pem")
    with pytest.raises(FileNotFoundError, match="tracking_ca_bundle"):
        connect(missing, stores)


def test_plain_http_off_the_machine_and_unverified_tls_are_warned_about():
    assert set(unprotected(Connection("http://10.0.0.1:5000"))) == {"http"}
    assert unprotected(Connection("http://127.0.0.1:5000")) == {}
    assert set(unprotected(Connection("https://h", insecure_tls=True))) == {"tls"}


def test_credentials_in_the_uri_leave_it_and_say_where_they_came_from():
    stores = LocalStores(Internals(Once()))
    # A URI resolved already (MLFLOW_TRACKING_URI's, as the integration tests check).
    from_uri = connect(MLflowPlusConfig(), stores, "http://bob:s%40cret@10.0.0.1:5000")
    assert from_uri.uri == "http://10.0.0.1:5000"
    assert (from_uri.username, from_uri.password) == ("bob", SecretStr("s@cret"))
    assert from_uri.credentials_source == "the user:password in tracking_uri"
    # The watcher's connection, with its secrets resolved again, keeps the URI's credentials.
    again = connect(MLflowPlusConfig(), stores, from_uri)
    assert again.uri == from_uri.uri and again.authorization() == from_uri.authorization()
    # Credentials configured as such win over the URI's.
    both = connect(MLflowPlusConfig(tracking_token="t"), stores, "https://u:p@h")
    assert both.authorization() == "Bearer t"
    assert both.credentials_source == "tracking_token in the tracker's config"
