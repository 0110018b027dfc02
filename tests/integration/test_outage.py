"""A tracking outage costs telemetry delay, never the step or a point: spool, catch-up, sync."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration import pipelines
from tests.integration.pipelines import fault_then_log, measured, through_fault
from testsupport.proxy import Proxy
from testsupport.servers import MlflowServer
from tracker_flavor.cli.main import cli
from tracker_flavor.delivery import spool
from tracker_flavor.runs.metadata import SPOOL_DELIVERED, SPOOL_DELIVERED_KEY, SPOOL_KEY, account
from tracker_flavor.runs.metadata import SPOOL_SYNC_COMMAND_KEY as SYNC_COMMAND_KEY
from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY as DELIVERED_KEY
from tracker_flavor.runs.metadata import VALUES_NOT_DELIVERED_KEY as UNDELIVERED_KEY
from tracker_flavor.runs.metadata import VALUES_SPOOLED_KEY as SPOOLED_KEY

pytestmark = pytest.mark.integration

FAST = {"max_retries": 0, "connect_timeout_seconds": 2}
"""A dead server is found in seconds: refused connections are not retried by MLflow."""
ID_TAGS = {"zenml.pipeline_run_id", "zenml.run_name", "zenml.step_run_id", "mlflow.runName"}
"""Tags that differ between two runs of one pipeline."""


def file_server(workdir: Path) -> MlflowServer:
    """A server on MLflow's file store: it keeps every point it is sent, duplicates too."""
    return MlflowServer(
        workdir,
        backend_store_uri=f"file://{workdir}/mlruns",
        env={"MLFLOW_ALLOW_FILE_STORE": "true"},
    )


def kill(server: MlflowServer) -> None:
    """SIGKILL the server and its workers (it runs in its own process group)."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


def spool_root(server: MlflowServer) -> str:
    return spool.active_root(server.url)


def sync(*args: str) -> str:
    result = CliRunner().invoke(cli, ["sync", *args])
    assert result.exit_code == 0, result.output
    return result.output


def points(server: MlflowServer, run_id: str, key: str) -> list[int]:
    """Return the steps of every point of `key` the server holds, duplicates included."""
    return sorted(p.step for p in MlflowClient(server.url).get_metric_history(run_id, key))


def run_with_fault(action: Any, nested: bool = False, grace: float = 3, **counts: Any) -> Any:
    """Run `through_fault` with `action` mid-step; return its step's ZenML response."""
    pipelines.faults["current"] = action
    settings = {"nested": nested, "log_step_parameters": False, "outage_grace_seconds": grace}
    run = through_fault.with_options(settings={"experiment_tracker": settings})(
        fault="current", **counts
    )
    return Client().get_pipeline_run(run.id).steps["log_through_fault"]


def test_a_server_killed_and_restarted_within_the_step_gets_every_point_once(
    tracker_stack, session_dir, process_snapshot
):
    server = file_server(session_dir / "servers" / "outage_restart").start()
    try:
        tracker_stack("plus_restart", tracking_uri=server.url, **FAST)

        def kill_and_restart() -> None:
            kill(server)
            threading.Thread(target=server.start, daemon=True).start()

        pipelines.faults["current"] = kill_and_restart
        settings = {"log_step_parameters": False, "outage_grace_seconds": 60}
        run = through_fault.with_options(settings={"experiment_tracker": settings})(
            fault="current", first=1000, during=2000, pause=1.0, last=2000
        )
        step = Client().get_pipeline_run(run.id).steps["log_through_fault"]
        assert step.status == "completed"
        assert account(step.run_metadata)[DELIVERED_KEY] == 5000, step.run_metadata
        assert SPOOLED_KEY not in step.run_metadata and SPOOL_KEY not in step.run_metadata
        assert points(server, step.run_metadata["mlflow_run_id"], "faulted") == list(range(5000))
        assert spool.spooled_runs(spool_root(server)) == []
    finally:
        server.stop()


def test_a_server_back_after_the_pipeline_gets_every_point_once_by_sync(
    tracker_stack, session_dir, process_snapshot
):
    server = file_server(session_dir / "servers" / "outage_later").start()
    try:
        tracker_stack("plus_later", tracking_uri=server.url, **FAST)
        step = run_with_fault(lambda: kill(server), first=1000, during=1500)
        assert step.status == "completed"
        metadata = step.run_metadata
        counts = account(metadata)
        assert counts[DELIVERED_KEY] == 1000 and counts[UNDELIVERED_KEY] == 0, metadata
        assert metadata[SPOOLED_KEY] == 1500
        assert metadata[SYNC_COMMAND_KEY] == f"zenml-mlflow sync --run {step.pipeline_run_id}"
        assert Path(str(metadata[SPOOL_KEY])).is_dir()
        server.start()
        assert "1 run(s), 1 step(s), 1500 point(s)" in sync("--dry-run")
        assert "1 run(s), 1 step(s), 1500 point(s)" in sync()
        run_id = metadata["mlflow_run_id"]
        assert points(server, run_id, "faulted") == list(range(2500))
        parent = MlflowClient(server.url).get_run(run_id)
        assert parent.info.status == "FINISHED" and parent.info.end_time
        assert "Nothing spooled" in sync()
        assert points(server, run_id, "faulted") == list(range(2500))
    finally:
        server.stop()


def test_the_next_step_that_reaches_the_server_delivers_the_spool_first(
    tracker_stack, session_dir, process_snapshot
):
    server = file_server(session_dir / "servers" / "outage_catchup")
    try:
        tracker_stack("plus_catchup", tracking_uri=server.url, **FAST)
        pipelines.faults["current"] = server.start  # the server comes up as the first step ends
        run = Client().get_pipeline_run(fault_then_log(fault="current", first=1500).id)
        first, second = run.steps["log_through_fault"], run.steps["log_after"]
        # The second step delivered it: the first's metadata no longer reads as pending.
        assert first.run_metadata[SPOOLED_KEY] == 0
        assert first.run_metadata[SPOOL_DELIVERED_KEY] >= 1500  # with the journaled run's tags
        assert first.run_metadata[SYNC_COMMAND_KEY] == SPOOL_DELIVERED
        assert spool.spooled_runs(spool_root(server)) == []
        client = MlflowClient(server.url)
        parent_id = second.run_metadata["mlflow_run_id"]
        assert points(server, parent_id, "faulted") == list(range(1500))
        assert [p.value for p in client.get_metric_history(parent_id, "after")] == [1500]
        assert client.get_run(parent_id).info.status == "FINISHED"
        link = Client().get_run_step(first.id).run_metadata[METADATA_EXPERIMENT_TRACKER_URL]
        assert str(link).endswith(f"/runs/{parent_id}?workflowType=machine_learning")
        assert "Nothing spooled" in sync()
    finally:
        server.stop()


def test_fail_mode_fails_a_step_that_finds_the_server_down_and_spools_nothing(
    tracker_stack, session_dir, process_snapshot, caplog
):
    server = MlflowServer(session_dir / "servers" / "outage_fail")  # never started
    tracker_stack("plus_fail", tracking_uri=server.url, on_tracking_outage="fail", **FAST)
    with pytest.raises(RuntimeError, match="failure in step"):
        measured()
    assert f"could not connect to {server.url}: connection refused" in caplog.text
    assert not Path(spool_root(server)).exists()


def test_sync_names_a_run_with_nothing_spooled(zenml_stack):
    result = CliRunner().invoke(cli, ["sync", "--run", "no-such-run"])
    assert result.exit_code == 1
    assert "ZenML run no-such-run has nothing spooled in " in result.output


def structure(client: MlflowClient, experiment: str) -> dict[str, Any]:
    """Return what an experiment's runs hold, without ids and times."""
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    runs: dict[str, Any] = {}
    for run in found:
        name = run.data.tags.get("zenml.step_name", "parent")
        runs[name] = {
            "status": run.info.status,
            "child": "mlflow.parentRunId" in run.data.tags,
            "tags": {
                k: v for k, v in run.data.tags.items() if k not in ID_TAGS | {"mlflow.parentRunId"}
            },
            "params": run.data.params,
            "metrics": {
                key: sorted(
                    (p.step, p.value) for p in client.get_metric_history(run.info.run_id, key)
                )
                for key in run.data.metrics
            },
        }
    return runs


def test_a_nested_pipeline_run_while_the_server_is_down_is_synced_as_if_online(
    tracker_stack, session_dir, process_snapshot
):
    server = MlflowServer(session_dir / "servers" / "outage_down").start()
    try:
        tracker_stack("plus_down", tracking_uri=server.url, **FAST)
        measured.with_options(
            settings={"experiment_tracker": {"nested": True, "experiment_name": "online"}}
        )()
        kill(server)
        offline = measured.with_options(
            settings={"experiment_tracker": {"nested": True, "experiment_name": "offline"}}
        )()
        offline = Client().get_pipeline_run(offline.id)
        assert offline.status == "completed"
        for step in offline.steps.values():
            assert METADATA_EXPERIMENT_TRACKER_URL not in step.run_metadata
            assert step.run_metadata[SYNC_COMMAND_KEY] == f"zenml-mlflow sync --run {offline.id}"
        server.start()
        assert "1 run(s), 2 step(s)" in sync("--run", str(offline.id))
        client = MlflowClient(server.url)
        assert structure(client, "offline") == structure(client, "online")
        synced = structure(client, "offline")
        assert synced["parent"]["status"] == "FINISHED"
        assert synced["parent"]["tags"]["zenml.last_step"] == "evaluate"
        # The step links now open the synced runs.
        offline = Client().get_pipeline_run(offline.id)
        for name, step in offline.steps.items():
            link = str(step.run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
            run_id = link.split("?")[0].rsplit("/", 1)[-1]
            assert client.get_run(run_id).data.tags["zenml.step_name"] == name
        assert METADATA_EXPERIMENT_TRACKER_URL in offline.run_metadata
    finally:
        server.stop()


def test_a_sync_killed_halfway_and_run_again_delivers_each_point_once(
    tracker_stack, session_dir, process_snapshot
):
    server = file_server(session_dir / "servers" / "outage_sync")
    try:
        tracker_stack("plus_sync", tracking_uri=server.url, **FAST)
        total = 40_000
        step = run_with_fault(lambda: None, first=total)  # the server was never started
        assert step.status == "completed" and step.run_metadata[SPOOLED_KEY] == total
        journal = Path(str(step.run_metadata[SPOOL_KEY]))
        server.start()
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        first = subprocess.Popen(
            [sys.executable, "-m", "tracker_flavor.cli.main", "sync"],
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while len(list((journal / "acks").glob("*"))) < 8 and time.monotonic() < deadline:
            assert first.poll() is None, "sync ended before it could be killed"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        acked = len(list((journal / "acks").glob("*")))
        assert 8 <= acked < total // 1000 + 2, acked  # killed halfway
        sync()
        parents = MlflowClient(server.url).search_runs(
            [MlflowClient(server.url).get_experiment_by_name("through_fault").experiment_id],
            filter_string=f"tags.`zenml.pipeline_run_id` = '{step.pipeline_run_id}'",
        )
        assert len(parents) == 1
        assert points(server, parents[0].info.run_id, "faulted") == list(range(total))
        assert not journal.exists()
    finally:
        server.stop()


def test_a_server_slower_than_the_connect_timeout_never_spools_nor_fails(
    tracker_stack, session_dir, process_snapshot
):
    server = MlflowServer(session_dir / "servers" / "outage_slow").start()
    try:
        with Proxy(server.url, delay=1.5) as slow:
            tracker_stack(
                "plus_slow", tracking_uri=slow.url, connect_timeout_seconds=1,
                read_timeout_seconds=30, max_retries=0,
            )  # fmt: skip
            step = run_with_fault(lambda: None, first=10)
        assert step.status == "completed"
        assert account(step.run_metadata)[DELIVERED_KEY] == 10
        assert SPOOLED_KEY not in step.run_metadata
        assert spool.spooled_runs(spool_root(slow)) == []
    finally:
        server.stop()
