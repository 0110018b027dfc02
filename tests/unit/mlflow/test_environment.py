import importlib.machinery
import os
import sys
import types
import warnings

import mlflow
import pytest
from pydantic import SecretStr
from urllib3.exceptions import InsecureRequestWarning

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.mlflow.credentials import ServerCredentials
from tracker_flavor.mlflow.environment import ProcessEnvironment
from tracker_flavor.mlflow.internals import Internals
from tracker_flavor.mlflow.quiet import RequestNoise

pytestmark = pytest.mark.unit


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS"):
        monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


@pytest.fixture
def seam():
    """A seam of the test's own, taking out what it put into MLflow afterwards."""
    installed = Internals(Once())
    yield installed
    installed.uninstall()


def environment(seam, credentials: ServerCredentials | None = None) -> ProcessEnvironment:
    return ProcessEnvironment(
        seam, RequestNoise(), credentials if credentials is not None else ServerCredentials()
    )


def test_last_leave_restores_variables_and_tracking_uri(clean_env, seam, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "false")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "the-user-s-own")
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "kubernetes")
    before = mlflow.get_tracking_uri()
    held = ServerCredentials()
    env = environment(seam, held)
    first = Connection("http://127.0.0.1:9", token=SecretStr("tok"))
    rotated = Connection("http://127.0.0.1:9", token=SecretStr("rotated"))
    env.enter(first)
    env.enter(rotated)
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"
    # No secret in the environment: it names the provider, which holds the connections.
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert os.environ["MLFLOW_TRACKING_AUTH"] == "mlflow_plus"
    assert held.find("http://127.0.0.1:9/api") == rotated and held.fallback == "kubernetes"
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in os.environ
    env.leave(rotated)
    assert held.find("http://127.0.0.1:9/api") == first  # another step still runs
    env.leave(first)
    assert held.find("http://127.0.0.1:9/api") is None
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "the-user-s-own"
    assert os.environ["MLFLOW_TRACKING_AUTH"] == "kubernetes"
    assert os.environ["MLFLOW_TRACKING_INSECURE_TLS"] == "false"
    assert mlflow.get_tracking_uri() == before
    env.leave(first)  # an extra leave is harmless


def test_steps_name_the_default_registry_unless_spark_may_name_another(
    clean_env, seam, monkeypatch
):
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://the-user-s-registry")
    env = environment(seam)
    connection = Connection("http://127.0.0.1:9")
    env.enter(connection)
    # MLflow's own default for the store, named: no Spark session is asked per client.
    assert os.environ["MLFLOW_REGISTRY_URI"] == "http://127.0.0.1:9"
    assert mlflow.get_registry_uri() == "http://127.0.0.1:9"
    env.leave(connection)
    assert os.environ["MLFLOW_REGISTRY_URI"] == "http://the-user-s-registry"
    pyspark = types.ModuleType("pyspark")
    pyspark.__spec__ = importlib.machinery.ModuleSpec("pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark", pyspark)
    env.enter(connection)
    assert "MLFLOW_REGISTRY_URI" not in os.environ  # a session may name its registry
    env.leave(connection)
    monkeypatch.delitem(sys.modules, "pyspark")
    databricks = Connection("databricks", databricks_host="https://adb.net")
    env.enter(databricks)
    assert os.environ["MLFLOW_REGISTRY_URI"] == "databricks"
    env.leave(databricks)


def test_a_second_tracking_uri_at_the_same_time_is_refused(clean_env, seam):
    env = environment(seam)
    first = Connection("http://127.0.0.1:9")
    env.enter(first)
    try:
        with pytest.raises(RuntimeError, match="different tracking URIs"):
            env.enter(Connection("http://127.0.0.1:10"))
    finally:
        env.leave(first)


def test_run_variables_a_platform_set_are_hidden_from_steps_and_restored(
    clean_env, seam, monkeypatch
):
    """MLFLOW_RUN_ID and friends name the platform's own run: a step's start_run would use it."""
    inherited = {
        "MLFLOW_RUN_ID": "0123456789abcdef0123456789abcdef",
        "MLFLOW_EXPERIMENT_ID": "42",
        "MLFLOW_EXPERIMENT_NAME": "azureml-job",
    }
    for name, value in inherited.items():
        monkeypatch.setenv(name, value)
    env = environment(seam)
    connection = Connection("http://127.0.0.1:9")
    env.enter(connection)
    assert not set(inherited) & set(os.environ)
    env.leave(connection)
    assert {name: os.environ[name] for name in inherited} == inherited


def test_an_insecure_connection_silences_urllib3_for_its_host_only(clean_env, seam):
    env = environment(seam)
    with warnings.catch_warnings():
        insecure = Connection("https://h.example:5000", insecure_tls=True)
        env.enter(insecure)
        env.leave(insecure)
        ignored = [
            f for f in warnings.filters if f[0] == "ignore" and f[2] is InsecureRequestWarning
        ]
        assert [f[1].pattern for f in ignored] == [
            "Unverified HTTPS request is being made to host 'h\\.example'"
        ]
