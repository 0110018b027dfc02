import os

import mlflow
import pytest
from pydantic import SecretStr

from tracker_flavor.connection import Connection
from tracker_flavor.environment import ProcessEnvironment

pytestmark = pytest.mark.unit


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS"):
        monkeypatch.delenv(name, raising=False)
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


def test_last_leave_restores_variables_and_tracking_uri(clean_env, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "false")
    before = mlflow.get_tracking_uri()
    env = ProcessEnvironment()
    env.enter(Connection("http://127.0.0.1:9", token=SecretStr("tok")))
    env.enter(Connection("http://127.0.0.1:9", token=SecretStr("rotated")))
    assert mlflow.get_tracking_uri() == "http://127.0.0.1:9"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "rotated"
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in os.environ
    env.leave()
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "rotated"  # another step still runs
    env.leave()
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert os.environ["MLFLOW_TRACKING_INSECURE_TLS"] == "false"
    assert mlflow.get_tracking_uri() == before
    env.leave()  # an extra leave is harmless


def test_a_second_tracking_uri_at_the_same_time_is_refused(clean_env):
    env = ProcessEnvironment()
    env.enter(Connection("http://127.0.0.1:9"))
    try:
        with pytest.raises(RuntimeError, match="different tracking URIs"):
            env.enter(Connection("http://127.0.0.1:10"))
    finally:
        env.leave()


def test_run_variables_a_platform_set_are_hidden_from_steps_and_restored(clean_env, monkeypatch):
    """Issue 11 F3: MLFLOW_RUN_ID and friends of the platform's run leaked into steps."""
    inherited = {
        "MLFLOW_RUN_ID": "0123456789abcdef0123456789abcdef",
        "MLFLOW_EXPERIMENT_ID": "42",
        "MLFLOW_EXPERIMENT_NAME": "azureml-job",
    }
    for name, value in inherited.items():
        monkeypatch.setenv(name, value)
    env = ProcessEnvironment()
    env.enter(Connection("http://127.0.0.1:9"))
    assert not set(inherited) & set(os.environ)
    env.leave()
    assert {name: os.environ[name] for name in inherited} == inherited
