"""Exactly once whatever happens: concurrent syncs, damaged spools, lost answers, a full store."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration import pipelines
from tests.integration.pipelines import fault_then_log
from tests.integration.test_outage import FAST, file_server, kill, points, run_with_fault, sync
from testsupport.proxy import DROP, FREEZE, Proxy
from testsupport.servers import MlflowServer
from tracker_flavor.cli.sync import EXIT_BUSY, EXIT_UNDELIVERED
from tracker_flavor.delivery import spool
from tracker_flavor.runs import metadata as keys
from tracker_flavor.runs.metadata import account

pytestmark = pytest.mark.integration


def server_on(backend: str, workdir: Path) -> MlflowServer:
    """A server on MLflow's file store (keeps duplicates) or on SQLite."""
    return file_server(workdir) if backend == "file" else MlflowServer(workdir)


def segments(step) -> list[Path]:
    return sorted(Path(str(step.run_metadata[keys.SPOOL_KEY])).glob("*.json"))


def delivered_outputs(client: MlflowClient, run_id: str) -> tuple[int, list[str]]:
    """Return a run's dataset inputs (lineage) and its artifact folders (outputs, reports)."""
    run = client.get_run(run_id)
    return len(run.inputs.dataset_inputs), [a.path for a in client.list_artifacts(run_id)]


@pytest.mark.parametrize("backend", ["file", "sql"])
def test_concurrent_syncs_deliver_damaged_and_half_sent_spools_exactly_once(
    backend, tracker_stack, session_dir, process_snapshot
):
    server = server_on(backend, session_dir / "servers" / f"once_{backend}").start()
    try:
        tracker_stack(f"plus_once_{backend}", tracking_uri=server.url, **FAST)
        # Run 1: 1,000 points online, then the server dies: 1,500 spooled into a real run.
        half = run_with_fault(lambda: kill(server), first=1000, during=1500)
        # Run 2: wholly offline, 3,000 points.
        offline = run_with_fault(lambda: None, first=3000)
        assert half.status == offline.status == "completed"

        # A batch of run 1 reached the server but its acknowledgement is gone (the 2nd, not
        # the 1st: every unacknowledged batch is checked, not only the first).
        log = next(
            op
            for path in segments(half)
            for op in json.loads(path.read_text())
            if op.get("metrics")
        )
        # Run 2: one non-numeric value, and a damaged (truncated) segment.
        values = next(p for p in segments(offline) if '"faulted"' in p.read_text())
        operations = json.loads(values.read_text())
        operations[0]["metrics"][7][1] = "seven"
        values.write_text(json.dumps(operations))
        damaged = values.with_name("99999999999999999999-1-000000.json")
        damaged.write_text(values.read_text()[:100])

        server.start()
        client = MlflowClient(server.url)
        half_run = str(half.run_metadata[keys.RUN_ID_KEY])
        client.log_batch(half_run, [Metric(*point) for point in log["metrics"][1000:]])

        dry = sync("--dry-run")
        assert f"Run {half.pipeline_run_id}: spooled 1500, quarantined 0 damaged" in dry
        assert f"Run {offline.pipeline_run_id}: spooled " in dry
        assert "quarantined 1 damaged segment(s), skipped 1 invalid value(s)." in dry
        assert damaged.exists()  # a dry run moves nothing

        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        command = [sys.executable, "-m", "tracker_flavor.cli.main", "sync"]
        syncs = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [(process.wait(timeout=300), *process.communicate()) for process in syncs]
        outputs = [out.decode() + err.decode() for _, out, err in results]
        assert all("Traceback" not in output for output in outputs), outputs
        assert {code for code, _, _ in results} <= {0, EXIT_UNDELIVERED, EXIT_BUSY}, outputs
        assert EXIT_UNDELIVERED in {code for code, _, _ in results}, outputs  # the damage

        assert points(server, half_run, "faulted") == list(range(2500))
        runs = client.search_runs(
            [client.get_experiment_by_name("through_fault").experiment_id],
            filter_string=f"tags.`zenml.pipeline_run_id` = '{offline.pipeline_run_id}'",
        )
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert points(server, runs[0].info.run_id, "faulted") == [i for i in range(3000) if i != 7]
        quarantine = Path(spool.active_root(server.url)) / ".quarantine"
        assert [p.name for p in quarantine.rglob("*.json")] == [damaged.name]
        assert spool.spooled_runs(spool.active_root(server.url)) == []

        # The steps' metadata no longer reads as pending; outputs, reports and lineage arrived.
        for step, run_id in ((half, half_run), (offline, runs[0].info.run_id)):
            recorded = Client().get_run_step(step.id).run_metadata
            assert recorded[keys.SPOOL_SYNC_COMMAND_KEY] == keys.SPOOL_DELIVERED
            assert recorded[keys.VALUES_SPOOLED_KEY] == 0
            link = str(recorded[METADATA_EXPERIMENT_TRACKER_URL])
            assert link.endswith(f"{run_id}?workflowType=machine_learning")
            datasets, folders = delivered_outputs(client, run_id)
            assert datasets >= 1 and folders, (datasets, folders)
        assert Client().get_run_step(offline.id).run_metadata[keys.SPOOL_DELIVERED_KEY] >= 2999
        assert "Nothing spooled" in sync()
    finally:
        server.stop()


def test_lost_answers_and_a_frozen_server_store_each_point_once(
    tracker_stack, session_dir, process_snapshot
):
    server = file_server(session_dir / "servers" / "once_lossy").start()
    try:
        with Proxy(server.url) as proxy:
            tracker_stack(
                "plus_lossy", tracking_uri=proxy.url, read_timeout_seconds=3,
                connect_timeout_seconds=2, max_retries=0,
            )  # fmt: skip

            # Three requests stored, but their answers lost.
            lossy = run_with_fault(lambda: proxy.inject(DROP, count=3), first=1000, during=4000)
            assert lossy.status == "completed"
            assert account(lossy.run_metadata)[keys.VALUES_DELIVERED_KEY] == 5000
            assert account(lossy.run_metadata)[keys.VALUES_UNCONFIRMED_KEY] == 0
            run_id = str(lossy.run_metadata[keys.RUN_ID_KEY])
            assert points(server, run_id, "faulted") == list(range(5000))

            # Frozen at the step's end: the batch under way is spooled as unconfirmed.
            frozen = run_with_fault(lambda: proxy.inject(FREEZE, seconds=15), first=10, during=1000)
            assert frozen.status == "completed"
            assert account(frozen.run_metadata)[keys.VALUES_UNCONFIRMED_KEY] > 0, (
                frozen.run_metadata
            )
            proxy.heal()  # the server stores the held request now, after the step
            run_id = str(frozen.run_metadata[keys.RUN_ID_KEY])
            deadline = time.monotonic() + 30
            while len(points(server, run_id, "faulted")) < 1010 and time.monotonic() < deadline:
                time.sleep(0.2)
            sync()
            assert points(server, run_id, "faulted") == list(range(1010))
    finally:
        server.stop()


def test_a_full_artifact_store_never_fails_the_step_and_loses_nothing(
    tracker_stack, session_dir, process_snapshot, caplog
):
    """Needs root (CI runs as root): the spool's folder is a 64 KiB tmpfs that fills up."""
    server = MlflowServer(session_dir / "servers" / "once_full")
    full = Path(spool.active_root(server.url))
    full.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        tracker_stack("plus_full", tracking_uri=server.url, **FAST)
        pipelines.faults["current"] = server.start  # up as the first step ends
        run = Client().get_pipeline_run(fault_then_log(fault="current", first=5000).id)
        assert run.status == "completed"
        first = run.steps["log_through_fault"].run_metadata
        assert "No space left on device" in str(first[keys.SPOOL_ERROR_KEY])
        assert first[keys.VALUES_HELD_KEY] == 5000 and first[keys.VALUES_LOST_KEY] == 0
        warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
        assert len(warnings) == 1
        parent = str(run.steps["log_after"].run_metadata[keys.RUN_ID_KEY])
        assert points(server, parent, "faulted") == list(range(5000))
        assert not list(full.rglob("*.tmp"))
        assert spool.spooled_runs(str(full)) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)
        server.stop()


def test_sync_on_a_read_only_spool_prints_one_line_and_its_exit_code(
    tracker_stack, session_dir, process_snapshot
):
    from click.testing import CliRunner

    from tracker_flavor.cli.main import cli
    from tracker_flavor.cli.sync import EXIT_STORE

    server = MlflowServer(session_dir / "servers" / "once_read_only")
    tracker_stack("plus_read_only", tracking_uri=server.url, **FAST)
    step = run_with_fault(lambda: None, first=10)
    journal = Path(str(step.run_metadata[keys.SPOOL_KEY]))
    root = Path(spool.active_root(server.url))
    server.start()
    subprocess.run(["mount", "--bind", "-o", "ro", str(root), str(root)], check=True)
    try:
        result = CliRunner().invoke(cli, ["sync"])
        assert result.exit_code == EXIT_STORE, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert "Read-only file system" in result.output
    finally:
        subprocess.run(["umount", str(root)], check=False)
        server.stop()
    assert journal.exists()


def test_the_delivery_lease_has_one_holder_on_an_s3_artifact_store(on_topology):
    from concurrent.futures import ThreadPoolExecutor

    from tracker_flavor.delivery import lease

    store = Client().active_stack.artifact_store
    assert store.path.startswith("s3://")
    path = lease.path_of(spool.root_of(store.path, "http://lease"), str(uuid.uuid4()))
    takers = [lease.Lease(path) for _ in range(4)]
    with ThreadPoolExecutor(len(takers)) as pool:
        holders = list(pool.map(lambda taker: taker.take(), takers))
    winners = [taker for taker, holder in zip(takers, holders, strict=True) if holder is None]
    assert len(winners) == 1, holders
    winners[0].check()
    for loser in (taker for taker in takers if taker is not winners[0]):
        with pytest.raises(lease.LeaseLost):
            loser.check()
    winners[0].release()
    again = lease.Lease(path)
    assert again.take() is None  # released: free at once
    again.release()
