import uuid

import pytest

from tracker_flavor.runs.creation_lock import STALE_SECONDS, Holder, is_stale, pid_alive

pytestmark = pytest.mark.unit

HERE = Holder(100, "node-a")


def test_holder_tags_name_the_process_and_parse_back():
    lock_id = uuid.uuid4()
    tag = Holder(4242, "pod-7.cluster.local").tag(lock_id)
    assert tag == f"mlflow-plus-lock:holder:{lock_id}:4242@pod-7.cluster.local"
    assert Holder.parse(tag) == Holder(4242, "pod-7.cluster.local")
    assert Holder.parse("mlflow-plus-lock:holder:x:garbage") is None


def test_a_dead_holder_on_this_host_is_stale_at_once():
    dead = Holder(7, "node-a")
    assert is_stale(dead, 0.1, HERE, alive=lambda pid: False)
    assert not is_stale(dead, STALE_SECONDS * 10, HERE, alive=lambda pid: True)


def test_a_holder_elsewhere_or_unnamed_is_stale_only_after_the_bound():
    elsewhere = Holder(7, "node-b")
    for holder in (elsewhere, None):
        assert not is_stale(holder, STALE_SECONDS - 1, HERE, alive=lambda pid: False)
        assert is_stale(holder, STALE_SECONDS + 1, HERE, alive=lambda pid: True)


def test_pid_alive():
    import os
    import subprocess
    import sys

    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
