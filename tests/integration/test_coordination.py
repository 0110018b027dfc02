"""The cross-process lock on parent creation survives a holder killed with the lock."""

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runs import mlflow_runs as runs
from tracker_flavor.runs import parent, tags
from tracker_flavor.runs.creation_lock import LOCK_PREFIX, creation_lock
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Takes the lock, creates the parent run, and hangs before recording it: killed there, it leaves
# the lock tag behind and a parent that only a search finds.
HOLDER = """
import sys, time
from mlflow import MlflowClient
from tests.integration.test_coordination import Records, spec
from tracker_flavor.runs import parent
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runtime import runtime
uri, run_id = sys.argv[1:]
class Hang(Records):
    def write(self, pipeline_run_id, created):
        print("created", created.run_id, flush=True)
        time.sleep(3600)
parent.resolve(MlflowClient(uri), Connection(uri), spec(run_id, "killed"), Hang(), runtime.runs)
"""


class Records:
    """Parent records kept in a list: the test's runs do not exist in ZenML."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def read(self, pipeline_run_id: str) -> None:
        return None

    def write(self, pipeline_run_id: str, created: parent.Parent) -> None:
        self.written.append(created.run_id)

    lock = staticmethod(creation_lock)


def spec(run_id: str, name: str) -> parent.ParentSpec:
    return parent.ParentSpec(run_id, "lock-takeover", name, {tags.PIPELINE_RUN_ID: run_id})


def lock_tags() -> list[str]:
    return [t.name for t in Client().list_tags(name=f"startswith:{LOCK_PREFIX}", size=100).items]


def test_a_killed_lock_holder_is_taken_over_at_once(zenml_stack, session_dir):
    uri = f"sqlite:///{session_dir}/lock-{uuid.uuid4().hex[:6]}.db"
    run_id = str(uuid.uuid4())
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, uri, run_id], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        assert line.startswith("created "), line
        created = line.split()[1]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    lock_id = str(Client().get_tag(f"{LOCK_PREFIX}{run_id}").id)
    stale = [name for name in lock_tags() if run_id in name or lock_id in name]
    assert len(stale) == 2  # the lock and the tag naming its holder

    client = MlflowClient(uri)
    exp = parent.experiment_id(client, Connection(uri), "lock-takeover", runtime.runs)
    records = Records()
    started = time.monotonic()
    found = parent.resolve(client, Connection(uri), spec(run_id, "taker"), records, runtime.runs)
    assert time.monotonic() - started < 15  # not the 60 s bound on waiting
    assert found.run_id == created and records.written == [created]
    assert [r.info.run_id for r in runs.find_parent_runs(client, exp, run_id)] == [created]
    assert set(stale) & set(lock_tags()) == set()
    assert [name for name in lock_tags() if run_id in name] == []
