import pytest

from tracker_flavor.uris import (
    check_tracking_uri,
    is_databricks_uri,
    is_remote_uri,
    normalize_host,
    run_url,
    strip_credentials,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5001",
        "https://mlflow.example.com/prefix",
        "databricks",
        "sqlite:////tmp/mlflow.db",
        "postgresql+psycopg2://u:p@db/mlflow",
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
    ],
)
def test_invalid_tracking_uris_name_the_field_and_the_fix(uri, message):
    with pytest.raises(ValueError, match=message) as error:
        check_tracking_uri(uri)
    assert "tracking_uri" in str(error.value)


def test_credentials_are_stripped():
    assert strip_credentials("https://bob:s3cret@host:5000/x") == "https://host:5000/x"
    assert strip_credentials("postgresql://u:pw@db/m") == "postgresql://db/m"
    assert strip_credentials("http://host:5000") == "http://host:5000"
    assert "s3cret" not in strip_credentials("http://bob:s3cret@h")


def test_kinds_of_uri():
    assert is_databricks_uri("databricks") and is_databricks_uri("databricks://profile")
    assert is_remote_uri("https://h") and not is_remote_uri("sqlite:///x.db")


def test_run_links():
    assert run_url("http://h:5000/", "3", "abc") == "http://h:5000/#/experiments/3/runs/abc"
    assert (
        run_url("https://adb.net", "3", "abc", databricks=True)
        == "https://adb.net/ml/experiments/3/runs/abc"
    )


def test_hosts_are_normalised():
    assert normalize_host("adb-1.azuredatabricks.net/") == "https://adb-1.azuredatabricks.net"
    assert normalize_host("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
