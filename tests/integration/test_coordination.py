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

from tracker_flavor import runs, tags
from tracker_flavor.coordination import LOCK_PREFIX

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Takes the lock, creates the parent run, and hangs before recording it: killed there, it leaves
# the lock tag behind and a parent that only a search finds.
HOLDER = """
import sys, time
from mlflow import MlflowClient
from tracker_flavor import runs, tags
uri, run_id = sys.argv[1:]
client = MlflowClient(uri)
exp = runs.experiment_id(client, uri, "lock-takeover", None)
def hang(parent):
    print("created", parent, flush=True)
    time.sleep(3600)
runs.resolve_parent_run(
    client, uri, exp, run_id, "killed", {tags.PIPELINE_RUN_ID: run_id}, lambda: None, hang
)
"""


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
    exp = runs.experiment_id(client, uri, "lock-takeover", None)
    recorded: list[str] = []
    started = time.monotonic()
    parent_id, _ = runs.resolve_parent_run(
        client, uri, exp, run_id, "taker", {tags.PIPELINE_RUN_ID: run_id}, lambda: None,
        recorded.append,
    )  # fmt: skip
    assert time.monotonic() - started < 15  # not the 60 s bound on waiting
    assert parent_id == created and recorded == [created]
    assert [r.info.run_id for r in runs.find_parent_runs(client, exp, run_id)] == [created]
    assert set(stale) & set(lock_tags()) == set()
    assert [name for name in lock_tags() if run_id in name] == []
