import json
import os
import socket
import subprocess

import pytest
from mlflow.entities import Metric, Param, RunTag

from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.delivery import spool
from tracker_flavor.delivery.ledger import Call, Chunk
from tracker_flavor.mlflow.connection import accepts_connections
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit


def test_a_journal_keeps_its_segments_in_order_and_its_acknowledgements(tmp_path):
    journal = spool.Journal.of(spool.root_of(str(tmp_path), "http://server:5000"), "run", "step")
    journal.append([spool.end_operation("r1", "FINISHED")])
    journal.append([])  # nothing: no segment
    journal.append(
        [spool.log_operation("r1", params={"a": "1"}), spool.end_operation("r2", "FAILED")]
    )
    keyed = list(journal.operations())
    assert [operation["op"] for _, operation in keyed] == ["end", "log", "end"]
    assert [key.rsplit(".", 1)[1] for key, _ in keyed] == ["0", "0", "1"]
    assert len(journal.segments()) == 2 and journal.size() > 0
    journal.acknowledge(f"{keyed[1][0]}.0")
    assert journal.acknowledged() == {f"{keyed[1][0]}.0"}
    assert not list(tmp_path.rglob("*.tmp"))  # written, then renamed
    root = spool.root_of(str(tmp_path), "http://server:5000")
    assert spool.spooled_runs(root) == ["run"] and spool.step_journals(root, "run") == [journal]
    journal.remove()
    assert spool.spooled_runs(root) == []


def test_each_server_has_its_own_spool():
    one, other = (spool.root_of("/store", uri) for uri in ("http://a:5000", "http://b:5000"))
    assert one != other and one.startswith("/store/mlflow_plus_spool/")


def test_steps_are_delivered_in_the_order_they_were_spooled(tmp_path):
    root = str(tmp_path)
    for step in ("zz-first", "aa-second"):
        spool.Journal.of(root, "run", step).append([spool.end_operation(step, "FINISHED")])
    assert [j.path.rsplit("/", 1)[1] for j in spool.step_journals(root, "run")] == [
        "zz-first",
        "aa-second",
    ]


def chunk(run_id: str, *metrics: int, sent: bool = False, **params: str) -> Chunk:
    return Chunk(
        run_id,
        None,
        Call(),
        [Metric("loss", float(i), 1000 + i, i) for i in metrics],
        [Param(k, v) for k, v in params.items()],
        [RunTag("t", "v")] if params else [],
        sent=sent,
    )


def test_consecutive_chunks_of_a_run_are_one_operation_with_every_point():
    operations = spool.chunk_operations(
        [chunk("a", 0, 1), chunk("a", 2, p="x"), chunk("b", 3), chunk("b", 4, sent=True)]
    )
    assert [(o["run_id"], o["unconfirmed"]) for o in operations] == [
        ("a", False),
        ("b", False),
        ("b", True),
    ]
    assert operations[0]["metrics"] == [
        ["loss", 0.0, 1000, 0],
        ["loss", 1.0, 1001, 1],
        ["loss", 2.0, 1002, 2],
    ]
    assert operations[0]["params"] == {"p": "x"} and operations[0]["tags"] == {"t": "v"}
    assert [spool.points(o) for o in operations] == [5, 1, 1]
    json.dumps(operations)  # plain JSON


def test_a_server_is_down_only_when_it_does_not_accept_a_connection():
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert accepts_connections(f"http://127.0.0.1:{port}", 2)
    assert not accepts_connections(f"http://127.0.0.1:{port}", 2)
    assert accepts_connections("sqlite:///tmp/mlflow.db", 2)  # not a network store


def test_mlflows_request_timeout_is_the_read_timeout():
    limits = RequestLimits(120, 2, 10)
    assert limits.variables()["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "120"
    assert limits.bound_seconds() == 3 * 120 + 2 and limits.connect_seconds == 10


def test_the_spool_never_holds_credentials(tmp_path):
    from pydantic import SecretStr

    from tracker_flavor.config.settings import MLflowPlusSettings
    from tracker_flavor.delivery import offline as outage
    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.runs.plan import PipelineFacts, StepFacts, step_plan

    connection = Connection(
        "http://alice:s3cret-pw@tracking:5000", username="alice", password=SecretStr("s3cret-pw")
    )
    facts = StepFacts(PipelineFacts("run-1", "run", "pipe"), "train", "step-1", 1, {"lr": 0.1})
    plan = step_plan(MLflowPlusSettings(nested=True), facts, "alice")
    journal = spool.Journal.of(spool.root_of(str(tmp_path), connection.shown), "run-1", "step-1")
    step = outage.start_offline(connection, plan, journal, runtime.mlflow.seam)
    runtime.mlflow.seam.pop_active_runs(step.run_id)
    written = "".join(path.read_text() for path in tmp_path.rglob("*.json"))
    assert "s3cret-pw" not in written and "http://tracking:5000" in written
    assert [o["kind"] for _, o in journal.operations() if o["op"] == "run"] == ["parent", "step"]


def test_a_damaged_segment_is_set_aside_and_bad_entries_are_skipped(tmp_path):
    root = spool.root_of(str(tmp_path), "http://server:5000")
    journal = spool.Journal.of(root, "run", "step")
    points = [["loss", 1.0, 1, 0], ["loss", "nan?", 2, 1], ["loss", 3.0, 3], ["loss", 4.0, 4, 3]]
    journal.append([spool.log_operation("r1", params={"a": "1"}), {"op": "log", "run_id": 5}])
    journal.append([{**spool.log_operation("r1"), "metrics": points}])
    journal.append([spool.end_operation("r1", "FINISHED")])
    truncated = sorted(tmp_path.rglob("*.json"))[-1]
    truncated.write_text(truncated.read_text()[:20])

    dry = journal.read(quarantine=False)
    assert [d.name for d in dry.quarantined] == [truncated.name] and truncated.exists()
    contents = journal.read()
    assert not truncated.exists()
    assert os.path.exists(f"{journal.quarantine_path}/{truncated.name}")
    assert len(journal.segments()) == 2
    assert contents.skipped == 3  # the entry with a bad run id, two bad points
    logged = [op for _, op in contents.operations if op["op"] == "log"]
    assert [p[3] for p in logged[1]["metrics"]] == [0, 3]
    assert spool.spooled_runs(root) == ["run"]  # the quarantine is no run


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    (target / "x.json").mkdir()  # a folder in the way: the temporary file cannot replace it
    (target / "x.json" / "keep").write_text("")
    with pytest.raises(OSError):
        spool.write_durably(str(target / "x.json"), "{}")
    assert sorted(p.name for p in target.iterdir()) == ["x.json"] and (target / "x.json").is_dir()


def test_writers_side_by_side_each_use_their_own_temporary_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    target = str(tmp_path / "lease.json")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: spool.write_durably(target, str(n)), range(64)))
    assert [p.name for p in tmp_path.iterdir()] == ["lease.json"]


def test_a_lease_is_held_by_one_process_and_taken_over_when_its_holder_died(tmp_path, monkeypatch):
    from tracker_flavor.delivery import lease

    monkeypatch.setattr(lease, "SETTLE_SECONDS", 0.0)
    path = lease.path_of(str(tmp_path), "run")
    first, second = lease.Lease(path), lease.Lease(path)
    assert first.take() is None
    holder = second.take()
    assert holder is not None and holder.pid == os.getpid()
    first.check()  # still its own
    stored = json.loads(open(path).read())
    child = subprocess.Popen(["true"])  # a pid that no longer runs
    child.wait()
    open(path, "w").write(json.dumps({**stored, "pid": child.pid}))
    assert second.take() is None  # its holder died on this host
    with pytest.raises(lease.LeaseLost):
        first.check()
    first.release()  # not its own: left alone
    assert os.path.exists(path)
    open(path, "w").write(json.dumps({**stored, "owner": "x", "expires": 0}))
    assert first.take() is None  # expired
    first.release()
    assert not os.path.exists(path)
    assert spool.spooled_runs(str(tmp_path)) == []
