"""MLflow's "Created by" and "Source" tags of the runs the tracker creates."""

import getpass

import pytest
from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

from tracker_flavor.runs.tags import run_context

pytestmark = pytest.mark.unit


def test_a_job_run_of_the_pipeline_source_by_the_tracking_user():
    assert run_context("pipelines.training.training", "training", "alice") == {
        MLFLOW_USER: "alice",
        MLFLOW_SOURCE_NAME: "pipelines.training.training",
        MLFLOW_SOURCE_TYPE: "JOB",
    }


def test_without_a_tracking_username_the_os_user_and_without_a_source_the_pipeline_name():
    context = run_context(None, "training", None)
    assert context[MLFLOW_USER] == getpass.getuser()
    assert context[MLFLOW_SOURCE_NAME] == "training"


def test_an_os_without_a_user_name_gives_mlflows_placeholder(monkeypatch):
    def no_user() -> str:
        raise OSError("no user name")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert run_context(None, "training", "")[MLFLOW_USER] == "unknown"
