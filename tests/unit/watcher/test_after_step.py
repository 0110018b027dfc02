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
    published.after_step(nowhere, step, None, settings, uuid.uuid4(), deliveries, RequestNoise())


def test_the_artifacts_link_is_written_beside_the_uploads_and_its_error_reaches_the_caller():
    import contextvars
    import threading

    step_context = contextvars.ContextVar("step", default=None)
    step_context.set("a step")
    uploads_done, seen = threading.Event(), {}

    def record() -> None:
        seen["thread"] = threading.current_thread().name
        seen["context"] = step_context.get()
        # Runs while the caller goes on: it waits for the caller's "uploads".
        seen["beside"] = uploads_done.wait(timeout=10)

    writing = published.Beside(record)
    uploads_done.set()
    writing.join()
    assert seen == {"thread": published.RECORDS_THREAD, "context": None, "beside": True}

    def fail() -> None:
        raise RuntimeError("store refused")

    with pytest.raises(RuntimeError, match="store refused"):
        published.Beside(fail).join()
