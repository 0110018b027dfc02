"""Each way a server can fail gives its own one-line message, fast, naming the URI and the fix."""

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from mlflow import MlflowClient
from zenml.enums import StackComponentType

from tests.integration.scenarios.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, Servers, api
from tests.integration.scenarios.pipelines import scenario
from testsupport.proxy import Proxy
from testsupport.servers import free_port
from tracker_flavor.config.component import MLflowPlusConfig
from tracker_flavor.mlflow.errors import TrackingServerError
from tracker_flavor.runs import steps
from tracker_flavor.runtime import runtime
from tracker_flavor.tracker import MLflowPlusExperimentTracker

pytestmark = pytest.mark.integration

BOUND_SECONDS = 60  # the built-in flavor takes ~245 s to give up on a dead server


def tracker(**config: object) -> MLflowPlusExperimentTracker:
    now = datetime.now()
    return MLflowPlusExperimentTracker(
        name="probe", id=uuid.uuid4(), config=MLflowPlusConfig(**config), flavor="mlflow_plus",
        type=StackComponentType.EXPERIMENT_TRACKER, user=None, created=now, updated=now,
    )  # fmt: skip


def failure(probe: MLflowPlusExperimentTracker, call: Callable[[MlflowClient], object]) -> str:
    connection = probe.connection()
    started = time.monotonic()
    with pytest.raises(TrackingServerError) as error:
        runtime.mlflow.environment.enter(connection)
        try:
            with steps.client(connection, runtime.mlflow, probe.config) as client:
                call(client)
        finally:
            runtime.mlflow.environment.leave(connection)
    assert time.monotonic() - started < BOUND_SECONDS
    return str(error.value)


def search(client: MlflowClient) -> object:
    return client.search_experiments(max_results=1)


def test_every_failure_has_its_own_actionable_line(servers: Servers, session_dir):
    env_before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    locked = api(
        servers.auth, "/api/2.0/mlflow/experiments/create", {"name": f"locked-{uuid.uuid4().hex[:6]}"},
        ("admin", ADMIN_PASSWORD),
    )["experiment_id"]  # fmt: skip
    dead = f"http://127.0.0.1:{free_port()}"
    with Proxy(servers.plain.url, fail_status=503) as broken:
        messages = {
            "wrong uri": failure(tracker(tracking_uri=f"{servers.plain.url}/not-mlflow"), search),
            "refused": failure(tracker(tracking_uri=dead), search),
            "dns": failure(tracker(tracking_uri="http://no-such-host.invalid:5000"), search),
            "401": failure(
                tracker(tracking_uri=servers.auth.url, tracking_username="alice",
                        tracking_password="not-" + ALICE_PASSWORD),
                search,
            ),
            "403": failure(
                tracker(tracking_uri=servers.auth.url, tracking_username="alice",
                        tracking_password=ALICE_PASSWORD),
                lambda client: client.create_run(locked),
            ),
            "tls": failure(tracker(tracking_uri=servers.tls.url), search),
            "plain http as https": failure(
                tracker(tracking_uri=servers.plain.url.replace("http:", "https:"),
                        tracking_insecure_tls=True),
                search,
            ),
            "5xx": failure(tracker(tracking_uri=broken.url, max_retries=1), search),
        }  # fmt: skip
    assert messages["wrong uri"].startswith(f"{servers.plain.url}/not-mlflow answered HTTP 404")
    assert messages["refused"].startswith(f"could not connect to {dead}: connection refused")
    assert messages["dns"].startswith("the host of http://no-such-host.invalid:5000 could not")
    assert messages["401"] == (
        f"authentication to {servers.auth.url} failed (HTTP 401): "
        "check tracking_username/tracking_password in the tracker's config."
    )
    assert messages["403"].startswith(f"{servers.auth.url} refused access (HTTP 403)")
    assert messages["tls"].startswith(f"TLS verification of {servers.tls.url} failed")
    assert messages["plain http as https"] == (
        f"{servers.plain.url.replace('http:', 'https:')} speaks plain http, not https (the TLS "
        "handshake got a plain-text answer: wrong version number): use http:// in tracking_uri, "
        "or enable TLS on the server."
    )
    assert messages["5xx"].startswith(f"the MLflow server at {broken.url} failed (HTTP 503)")
    assert len(set(messages.values())) == len(messages)
    for message in messages.values():
        assert "\n" not in message and ALICE_PASSWORD not in message
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == env_before


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A server that accepts connections and never answers: a hung server or a stuck proxy."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in accepted:
        connection.close()


def test_a_server_that_never_answers_fails_the_step_in_the_stated_time_with_one_line(
    black_hole, tracker_stack, caplog
):
    # 10 s per attempt, 2 retries; it accepts connections, so it is slow, not down: no spool.
    tracker_stack("plus_black_hole", tracking_uri=black_hole, read_timeout_seconds=10)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="failure in step"):
        scenario()
    elapsed = time.monotonic() - started
    # What ZenML's console and step logs print: every record, with its traceback if any.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    line = f"{black_hole} accepted the connection but did not answer within "
    assert logged.count(line) == 1, logged
    stated = float(re.search(re.escape(line) + r"(\d+) s", logged)[1])  # type: ignore[index]
    assert stated == 3 * 10 + 2
    # ZenML's own start and end of a run take seconds; waiting twice (64 s) must not pass.
    assert elapsed < stated + 25, elapsed
    assert "Retrying (" not in logged, logged
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
