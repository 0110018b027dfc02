"""Each way a server can fail gives its own one-line message, fast, naming the URI and the fix."""

import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from mlflow import MlflowClient
from zenml.enums import StackComponentType

from tests.integration.scenarios.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, Servers, api
from tests.support.proxy import Proxy
from tests.support.servers import free_port
from tracker_flavor.config import MLflowPlusConfig
from tracker_flavor.errors import TrackingServerError
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
    uri = probe.tracking_uri()
    started = time.monotonic()
    with pytest.raises(TrackingServerError) as error:
        with probe.connected(uri, probe.client_variables(uri)) as client:
            call(client)
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
            "5xx": failure(tracker(tracking_uri=broken.url, max_retries=1), search),
        }  # fmt: skip
    assert messages["wrong uri"].startswith(f"{servers.plain.url}/not-mlflow answered HTTP 404")
    assert messages["refused"].startswith(f"could not connect to {dead}: connection refused")
    assert messages["dns"].startswith("the host of http://no-such-host.invalid:5000 could not")
    assert messages["401"] == (
        f"authentication to {servers.auth.url} failed (HTTP 401): "
        "check tracking_username/tracking_password."
    )
    assert messages["403"].startswith(f"{servers.auth.url} refused access (HTTP 403)")
    assert messages["tls"].startswith(f"TLS verification of {servers.tls.url} failed")
    assert messages["5xx"].startswith(f"the MLflow server at {broken.url} failed (HTTP 503)")
    assert len(set(messages.values())) == len(messages)
    for message in messages.values():
        assert "\n" not in message and ALICE_PASSWORD not in message
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == env_before
