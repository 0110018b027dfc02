"""What is sent after ZenML published a step: nothing when the settings ask for nothing, else the
uploads and the datasets side by side; a hand-off is counted for the exit and never raises."""

import threading
import uuid
from types import SimpleNamespace

import pytest

from testsupport.servers import free_port
from tracker_flavor.concurrency.locks import ReadersWriterLock
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


class MeetingPublisher:
    """Answers the datasets' request and an upload only once both are under way at once."""

    def __init__(self) -> None:
        self.both = threading.Barrier(2, timeout=10)
        self.calls: list[str] = []

    def log_inputs(self, run_id, datasets):
        self.calls.append(f"datasets {len(datasets)}")
        self.both.wait()

    def log_artifacts(self, run_id, local_dir, artifact_path):
        self.calls.append(f"upload {artifact_path}")
        self.both.wait()

    def set_tag(self, run_id, key, value):
        self.calls.append(f"tag {key}={value}")


def test_the_datasets_request_and_the_uploads_are_under_way_together(tmp_path):
    report = tmp_path / "report.html"
    report.write_text("<p>report</p>")
    version = SimpleNamespace(
        id=uuid.uuid4(), artifact=SimpleNamespace(name="table"), version="1", uri=str(tmp_path),
        metadata={}, visualizations=[SimpleNamespace(uri=str(report), type="html")],
    )  # fmt: skip
    step_run = SimpleNamespace(inputs={}, outputs={"table": [version]})
    info = SimpleNamespace(pipeline_step_name="train", snapshot=None)
    settings = MLflowPlusSettings(track_output=False, track_reports=True, lineage=True)
    target = published.Target("r", lambda name, version: "", {})
    publisher = MeetingPublisher()
    account = published.deliver(
        publisher, info, step_run, settings, target, published.Deliveries(), RequestNoise()
    )
    # One after the other, each would wait for the other in vain and fail (not_delivered).
    assert sorted(publisher.calls) == ["datasets 1", "upload zenml/train/table"]
    assert account == {}  # nothing went amiss


def test_a_hand_off_runs_on_its_own_thread_holding_the_lock_shared_and_the_exit_waits_for_it(
    caplog,
):
    deliveries, lock, release = published.Deliveries(), ReadersWriterLock(), threading.Event()
    seen: list[str] = []

    def send() -> None:
        seen.append(threading.current_thread().name)
        release.wait(timeout=10)
        raise RuntimeError("the server went away")

    with lock.shared():  # shared holders do not block it
        deliveries.hand_off(send, lock)
        assert not deliveries.wait(timeout=0.2)  # the exit would wait for it
    (handed,) = deliveries.handed()
    switched = threading.Event()

    def switch_autologging() -> None:
        with lock.exclusive():
            switched.set()

    threading.Thread(target=switch_autologging, daemon=True).start()
    assert not switched.wait(timeout=0.2)  # it holds the lock shared while it sends
    release.set()
    assert switched.wait(timeout=10)
    assert deliveries.wait(timeout=10)
    assert handed.result(timeout=10) is None  # logged, not raised
    assert seen == [published.SENDER_THREAD]
    assert "the server went away" in caplog.text


def test_only_a_launch_here_without_a_model_to_log_hands_its_sending_off():
    assert published.handed_off(MLflowPlusSettings(), launched_here=True)
    assert not published.handed_off(MLflowPlusSettings(), launched_here=False)  # the watcher's
    # A later step may load the version it registers.
    assert not published.handed_off(MLflowPlusSettings(log_model="model"), launched_here=True)
