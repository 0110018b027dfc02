"""Exactly once whatever happens: concurrent syncs, damaged spools, lost answers, a full store.

Each case runs on MLflow's file store (which keeps every point it is sent, so a duplicate shows)
and on a SQL store, each a server shared by the module's tests. A server that is down and comes
back is a proxy on a fixed port (`Outage`): no server boots per test.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.entities import Metric
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration import pipelines
from tests.integration.pipelines import fault_then_log
from tests.integration.test_outage import FAST, file_server, points, run_with_fault, sync
from testsupport.probe import wait_for_watcher
from testsupport.proxy import DROP, FREEZE, Proxy
from testsupport.servers import MlflowServer, free_port
from tracker_flavor.cli.main import cli
from tracker_flavor.cli.sync import EXIT_BUSY, EXIT_STORE, EXIT_UNDELIVERED
from tracker_flavor.delivery import spool
from tracker_flavor.runs import metadata as keys
from tracker_flavor.runs.metadata import account

pytestmark = pytest.mark.integration

SYNC = [sys.executable, "-m", "tracker_flavor.cli.main", "sync"]


@dataclass
class Backend:
    """A running server of one backend store kind."""

    name: str
    server: MlflowServer


@pytest.fixture(scope="module")
def file_store(session_dir: Path) -> Iterator[MlflowServer]:
    """A server on MLflow's file store, shared by this module's tests."""
    server = file_server(session_dir / "servers" / "once_file").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["file", "sql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The module's file-store server, or the session's SQLite one."""
    fixture = "file_store" if request.param == "file" else "mlflow_server"
    return Backend(request.param, request.getfixturevalue(fixture))


class Outage:
    """A tracking URL whose server is down until `start` and after `kill`: a proxy on its port."""

    def __init__(self, upstream: MlflowServer) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proxy: Proxy | None = None

    def start(self) -> Proxy:
        """Bring the server up (again)."""
        self.proxy = Proxy(self.upstream.url, port=self.port).__enter__()
        return self.proxy

    def kill(self) -> None:
        """Take the server down at once, open connections too."""
        if self.proxy is not None:
            self.proxy.kill()
            self.proxy = None


def concurrent_syncs(count: int) -> list[tuple[int, str]]:
    """Run `count` `zenml-mlflow sync` processes at once; return their exit codes and outputs."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    syncs = [
        subprocess.Popen(SYNC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(count)
    ]
    results = [(process.wait(timeout=300), process.communicate()[0]) for process in syncs]
    outputs = [(code, out.decode()) for code, out in results]
    assert all("Traceback" not in output for _, output in outputs), outputs
    return outputs


def segments(step) -> list[Path]:
    return sorted(Path(str(step.run_metadata[keys.SPOOL_KEY])).glob("*.json"))


def delivered_outputs(client: MlflowClient, run_id: str) -> tuple[int, list[str]]:
    """Return a run's dataset inputs (lineage) and its artifact folders (outputs, reports)."""
    run = client.get_run(run_id)
    return len(run.inputs.dataset_inputs), [a.path for a in client.list_artifacts(run_id)]


def test_concurrent_syncs_deliver_damaged_and_half_sent_spools_exactly_once(
    backend, tracker_stack, process_snapshot
):
    server = Outage(backend.server)
    server.start()
    try:
        tracker_stack(f"plus_once_{backend.name}", tracking_uri=server.url, **FAST)
        # Run 1: 1,000 points online, then the server dies: 1,500 spooled into a real run.
        half = run_with_fault(server.kill, first=1000, during=1500)
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

        wait_for_watcher()  # it would catch up the moment the server is back
        server.start()
        client = MlflowClient(backend.server.url)
        half_run = str(half.run_metadata[keys.RUN_ID_KEY])
        client.log_batch(half_run, [Metric(*point) for point in log["metrics"][1000:]])
        before = points(backend.server, half_run, "faulted")

        dry = sync("--dry-run")
        assert f"Run {half.pipeline_run_id}: spooled 1500, quarantined 0 damaged" in dry
        assert f"Run {offline.pipeline_run_id}: spooled " in dry
        assert "quarantined 1 damaged segment(s), skipped 1 invalid value(s)." in dry
        assert damaged.exists()  # a dry run moves nothing

        # A read-only spool: one line, its exit code, nothing moved or sent.
        root = Path(spool.active_root(server.url))
        subprocess.run(["mount", "--bind", "-o", "ro", str(root), str(root)], check=True)
        try:
            result = CliRunner().invoke(cli, ["sync"])
        finally:
            subprocess.run(["umount", str(root)], check=False)
        assert result.exit_code == EXIT_STORE, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert "Read-only file system" in result.output
        assert damaged.exists() and points(backend.server, half_run, "faulted") == before

        results = concurrent_syncs(2)
        assert {code for code, _ in results} <= {0, EXIT_UNDELIVERED, EXIT_BUSY}, results
        assert EXIT_UNDELIVERED in {code for code, _ in results}, results  # the damage

        assert points(backend.server, half_run, "faulted") == list(range(2500))
        runs = client.search_runs(
            [client.get_experiment_by_name("through_fault").experiment_id],
            filter_string=f"tags.`zenml.pipeline_run_id` = '{offline.pipeline_run_id}'",
        )
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert points(backend.server, runs[0].info.run_id, "faulted") == [
            i for i in range(3000) if i != 7
        ]
        assert [p.name for p in (root / ".quarantine").rglob("*.json")] == [damaged.name]
        assert spool.spooled_runs(str(root)) == []

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
        server.kill()


def test_lost_answers_and_a_frozen_server_store_each_point_once(
    backend, tracker_stack, process_snapshot
):
    with Proxy(backend.server.url) as proxy:
        tracker_stack(
            f"plus_lossy_{backend.name}", tracking_uri=proxy.url, read_timeout_seconds=3,
            connect_timeout_seconds=2, max_retries=0,
        )  # fmt: skip

        # Three requests stored, but their answers lost. The retries' backoff fits in the grace
        # even on a loaded machine: nothing is left to spool.
        lossy = run_with_fault(
            lambda: proxy.inject(DROP, count=3), grace=60, first=1000, during=4000
        )
        assert lossy.status == "completed"
        counts = account(lossy.run_metadata)
        assert counts[keys.VALUES_DELIVERED_KEY] == 5000, str(dict(lossy.run_metadata))
        assert counts[keys.VALUES_UNCONFIRMED_KEY] == 0
        run_id = str(lossy.run_metadata[keys.RUN_ID_KEY])
        assert points(backend.server, run_id, "faulted") == list(range(5000))

        # Frozen at the step's end: the batch under way is spooled as unconfirmed.
        frozen = run_with_fault(lambda: proxy.inject(FREEZE, seconds=15), first=10, during=1000)
        assert frozen.status == "completed"
        assert account(frozen.run_metadata)[keys.VALUES_UNCONFIRMED_KEY] > 0, frozen.run_metadata
        proxy.heal()  # the server stores the held request now, after the step
        run_id = str(frozen.run_metadata[keys.RUN_ID_KEY])
        deadline = time.monotonic() + 30
        while len(points(backend.server, run_id, "faulted")) < 1010 and time.monotonic() < deadline:
            time.sleep(0.2)
        sync()
        assert points(backend.server, run_id, "faulted") == list(range(1010))


def test_a_full_artifact_store_never_fails_the_step_and_loses_nothing(
    backend, tracker_stack, process_snapshot, caplog
):
    """Needs root (CI runs as root): the spool's folder is a 64 KiB tmpfs that fills up."""
    server = Outage(backend.server)
    full = Path(spool.active_root(server.url))
    full.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], check=True)
    try:
        tracker_stack(f"plus_full_{backend.name}", tracking_uri=server.url, **FAST)
        pipelines.faults["current"] = server.start  # up as the first step ends
        run = Client().get_pipeline_run(fault_then_log(fault="current", first=5000).id)
        assert run.status == "completed"
        first = run.steps["log_through_fault"].run_metadata
        assert "No space left on device" in str(first[keys.SPOOL_ERROR_KEY])
        assert first[keys.VALUES_HELD_KEY] == 5000 and first[keys.VALUES_LOST_KEY] == 0
        warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
        assert len(warnings) == 1
        parent = str(run.steps["log_after"].run_metadata[keys.RUN_ID_KEY])
        assert points(backend.server, parent, "faulted") == list(range(5000))
        assert not list(full.rglob("*.tmp"))
        assert spool.spooled_runs(str(full)) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)
        server.kill()


def test_concurrent_sync_processes_on_an_s3_artifact_store_deliver_each_point_once(
    on_topology, file_store, process_snapshot
):
    from zenml.enums import StackComponentType as Kind

    client = Client()
    server = Outage(file_store)
    name = f"once-s3-{server.port}"
    tracker = client.create_stack_component(
        name, "mlflow_plus", Kind.EXPERIMENT_TRACKER, {"tracking_uri": server.url, **FAST}
    )
    topology = client.get_stack(on_topology.stack_id).components
    components = {kind: [found[0].id] for kind, found in topology.items()}
    client.create_stack(name, components={**components, Kind.EXPERIMENT_TRACKER: [tracker.id]})
    client.activate_stack(name)
    try:
        step = run_with_fault(lambda: None, first=3000)  # the server is down throughout
        root = spool.active_root(server.url)
        assert root.startswith("s3://") and spool.spooled_runs(root) == [str(step.pipeline_run_id)]
        server.start()
        results = concurrent_syncs(2)
        codes = [code for code, _ in results]
        assert set(codes) <= {0, EXIT_BUSY} and 0 in codes, results
        mlflow = MlflowClient(file_store.url)
        (run,) = mlflow.search_runs(
            [mlflow.get_experiment_by_name("through_fault").experiment_id],
            filter_string=f"tags.`zenml.pipeline_run_id` = '{step.pipeline_run_id}'",
        )
        assert points(file_store, run.info.run_id, "faulted") == list(range(3000))
        # This process listed the spool before the others delivered it: it sees it gone.
        assert "Nothing spooled" in sync()
        recorded = Client().get_run_step(step.id).run_metadata
        assert recorded[keys.SPOOL_DELIVERED_KEY] >= 3000, recorded
    finally:
        server.kill()
        client.activate_stack(on_topology.stack_id)


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
