"""The built-in tracker's public API rules: local_path, configure_mlflow's environment."""

import pytest

from tracker_flavor.builtin_api import local_store_path, process_variables
from tracker_flavor.mlflow.embedded import is_embedded_uri

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "configured", "expected"),
    [
        ("http://127.0.0.1:5000", True, None),
        ("databricks", True, None),
        ("file:///data/mlruns", True, "///data/mlruns"),
        ("postgresql://db/mlflow", True, None),
        ("sqlite:////store/mlflow.db", False, "/store/mlflow_artifacts"),
    ],
)
def test_local_path_follows_the_builtin(uri, configured, expected):
    assert local_store_path(uri, configured, "/store") == expected


def test_configure_mlflow_says_tls_is_verified_unless_told_otherwise():
    assert process_variables({"MLFLOW_TRACKING_TOKEN": "t"}) == {
        "MLFLOW_TRACKING_INSECURE_TLS": "false",
        "MLFLOW_TRACKING_TOKEN": "t",
    }
    insecure = process_variables({"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert insecure["MLFLOW_TRACKING_INSECURE_TLS"] == "true"


def test_the_embedded_store_is_recognised_by_its_uri(tmp_path):
    assert is_embedded_uri(f"sqlite:///{tmp_path.resolve()}/mlflow.db", str(tmp_path))
    assert not is_embedded_uri(f"sqlite:///{tmp_path.resolve()}/other.db", str(tmp_path))
    assert not is_embedded_uri("http://127.0.0.1:5000", str(tmp_path))
