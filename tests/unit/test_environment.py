import os

import mlflow
import pytest

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
    env.enter("http://127.0.0.1:9", {"MLFLOW_TRACKING_TOKEN": "tok"})
    env.enter("http://127.0.0.1:9", {"MLFLOW_TRACKING_TOKEN": "rotated"})
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
    env.enter("http://127.0.0.1:9", {})
    try:
        with pytest.raises(RuntimeError, match="different tracking URIs"):
            env.enter("http://127.0.0.1:10", {})
    finally:
        env.leave()
