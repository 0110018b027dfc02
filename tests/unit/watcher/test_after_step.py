"""What is sent after ZenML published a step costs nothing when the settings ask for nothing."""

import uuid

import pytest

from testsupport.servers import free_port
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.mlflow.quiet import RequestNoise
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.steps import StepRun
from tracker_flavor.watcher import after_step as published

pytestmark = pytest.mark.unit

NOTHING = {"track_output": False, "track_reports": False, "lineage": False}


def test_a_step_whose_settings_want_nothing_after_it_costs_no_request():
    nowhere = Connection(f"http://127.0.0.1:{free_port()}")  # any request would fail
    step = StepRun(nowhere, Parent("p", "1", "train"), "p", False, False)
    settings = MLflowPlusSettings(**NOTHING)
    assert not published.wanted(settings)
    assert published.wanted(MLflowPlusSettings())  # reports and lineage are on by default
    deliveries = published.Deliveries()
    published.after_step(
        nowhere, step, None, None, settings, uuid.uuid4(), deliveries, RequestNoise()
    )
