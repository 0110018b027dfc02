"""Sending a step's outputs: a dataset another writer created meanwhile is recorded on a retry;
a run's artifact URI is asked once per process, whatever the steps sharing it."""

import threading
from types import SimpleNamespace

import pytest

from tracker_flavor.watcher.publisher import (
    DATASET_TRIES,
    GET_RUN,
    RestPublisher,
    RunInfos,
    log_inputs,
)

pytestmark = pytest.mark.unit

CONFLICT = (
    "BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
    "datasets.experiment_id, datasets.name, datasets.digest"
)


class Failing:
    """A publisher whose first `log_inputs` calls fail with the given messages."""

    def __init__(self, *errors: str) -> None:
        self.errors, self.calls = list(errors), 0

    def log_inputs(self, run_id, datasets):
        self.calls += 1
        if self.errors:
            raise RuntimeError(self.errors.pop(0))


def test_a_concurrent_insert_of_the_same_dataset_is_tried_again():
    publisher = Failing(CONFLICT)
    log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == 2


def test_other_errors_and_endless_conflicts_are_raised():
    publisher = Failing("PERMISSION_DENIED: no")
    with pytest.raises(RuntimeError, match="PERMISSION_DENIED"):
        log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == 1
    publisher = Failing(*[CONFLICT] * DATASET_TRIES)
    with pytest.raises(RuntimeError, match="UNIQUE"):
        log_inputs(publisher, "run", [], threading.Lock())
    assert publisher.calls == DATASET_TRIES


class Server:
    """A REST client's stand-in that answers `runs/get` and records what was asked."""

    def __init__(self, uri: str) -> None:
        self.connection = SimpleNamespace(uri=uri)
        self.asked: list[tuple[str, str]] = []

    def request(self, method, path, params=None, **kwargs):
        self.asked.append((path, params["run_id"]))
        return {"run": {"info": {"artifact_uri": f"s3://{self.connection.uri}/{params['run_id']}"}}}


def test_steps_sharing_a_run_ask_its_artifact_uri_once_per_server():
    known = RunInfos()
    one, other = Server("http://one"), Server("http://other")
    for _ in range(3):  # each step gets a publisher of its own
        assert (
            RestPublisher(one, known)._run_info("parent")["artifact_uri"]
            == "s3://http://one/parent"
        )
    RestPublisher(one, known)._run_info("child")
    # The same run id on another server is another run.
    assert (
        RestPublisher(other, known)._run_info("parent")["artifact_uri"]
        == "s3://http://other/parent"
    )
    assert one.asked == [(GET_RUN, "parent"), (GET_RUN, "child")]
    assert other.asked == [(GET_RUN, "parent")]


def test_a_run_whose_creation_answered_is_never_asked():
    known, server = RunInfos(), Server("http://one")
    known.remember("http://one", "child", "s3://bucket/child", "7")
    assert RestPublisher(server, known)._run_info("child")["artifact_uri"] == "s3://bucket/child"
    assert server.asked == []
