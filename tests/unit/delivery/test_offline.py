"""A step that finds the server down goes on offline, and its metadata names its spool."""

import uuid

import pytest

from testsupport.servers import free_port
from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.delivery import offline as outage
from tracker_flavor.delivery import spool
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runs import metadata as keys
from tracker_flavor.runs.metadata import VALUES_SPOOLED_KEY as SPOOLED_KEY
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.plan import PipelineFacts, StepFacts, step_plan
from tracker_flavor.runs.steps import StepRun
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit

STEP = StepFacts(PipelineFacts("run-id", "train-2026", "train"), "fit", "step-id", 1)


def step_spool(tmp_path) -> outage.StepSpool:
    root = str(tmp_path)
    return outage.StepSpool(
        root, spool.Journal.of(root, "run-id", "step-id"), "run-id", outage.HeldSpools()
    )


def test_a_step_that_finds_the_server_down_starts_offline_on_placeholder_runs(tmp_path):
    down = Connection(f"http://127.0.0.1:{free_port()}", limits=RequestLimits(1, 0, 1))
    plan = step_plan(MLflowPlusSettings(nested=True), STEP, None)
    journaled = step_spool(tmp_path)
    step = outage.start(down, MLflowPlusConfig(), uuid.uuid4(), plan, journaled, runtime.runs)
    try:
        assert journaled.offline and step.nested and step.run_id != step.parent.run_id
        operations = [operation["op"] for _, operation in journaled.journal.operations()]
        assert operations == ["run", "log", "run", "log"]  # the parent, then the step's run
    finally:
        runtime.mlflow.seam.pop_active_runs(step.run_id)


def test_an_offline_step_names_its_spool_and_no_placeholder_run(tmp_path):
    step = StepRun(Connection("http://h:5000"), Parent("p", "1", "train"), "p", False, False)
    delivery = {"mlflow_values_delivered": 0}
    offline = step_spool(tmp_path)
    offline.offline, offline.spooled = True, 3
    assert offline.step_metadata(step, delivery) == {
        **delivery, **offline.metadata(), SPOOLED_KEY: 3,
    }  # fmt: skip
    assert offline.final_wait(30) == 0.0  # its values go to the spool at once
    online = step_spool(tmp_path)
    assert online.step_metadata(step, delivery) == {**step.metadata(), **delivery}
    assert online.final_wait(30) == 30
    online.spooled = 5  # the rest of its values went to the spool after the grace
    assert online.step_metadata(step, delivery)[keys.SPOOL_KEY] == online.journal.path


def test_a_store_that_refuses_the_spool_keeps_values_in_bounded_memory(tmp_path, caplog):
    read_only = tmp_path / "read-only"
    read_only.write_text("")  # a file where the spool's folder should be: every write fails
    held = outage.HeldSpools(limit=1500)
    step = outage.StepSpool(
        str(read_only), spool.Journal.of(str(read_only), "run-id", "step-id"), "run-id", held
    )
    values = [["loss", 1.0, 1, i] for i in range(1000)]
    step.append([{**spool.log_operation("r1"), "metrics": values}])
    step.append([{**spool.log_operation("r1"), "metrics": values}])  # beyond the bound: lost
    step.append([spool.end_operation("r1", "FINISHED")])  # after held ones: held too, in order
    assert (step.held_values, step.lost) == (1000, 1000)
    named = step.metadata()
    assert named["mlflow_values_held_in_memory"] == 1000 and named["mlflow_values_lost"] == 1000
    assert "mlflow_spool_error" in named
    assert sum("cannot be written" in r.getMessage() for r in caplog.records) == 1
    [journal] = held.of("run-id")
    assert [op["op"] for _, op in journal.read().operations] == ["log", "end"]
    read_only.unlink()  # the store takes it now: the next write puts the held values first
    held.write_out("run-id")
    assert held.of("run-id") == []
    written = spool.Journal.of(str(read_only), "run-id", "step-id")
    assert [op["op"] for _, op in written.operations()] == ["log", "end"]
