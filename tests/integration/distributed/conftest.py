"""A PostgreSQL-backed MLflow server behind a counting proxy, and a stack whose steps run as processes,
on the session's local ZenML store and on a ZenML server (the production topology)."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testsupport.postgres import Postgres
from testsupport.proxy import Proxy
from testsupport.servers import MlflowServer


@dataclass
class Cluster:
    server: MlflowServer
    proxy: Proxy
    stack_id: str
    logs: Path
    connected: Callable[[], AbstractContextManager[None]] = nullcontext
    """Connect the test process (and the step processes it starts) to the cluster's ZenML store."""


@contextmanager
def local_parts(request: pytest.FixtureRequest, session_dir: Path) -> Iterator[MlflowServer]:
    """The session's local ZenML store and a PostgreSQL-backed MLflow server."""
    request.getfixturevalue("zenml_stack")
    postgres = Postgres().start()
    server = MlflowServer(session_dir / "pg-server", backend_store_uri=postgres.uri).start()
    try:
        yield server
    finally:
        server.stop()
        postgres.stop()


@pytest.fixture(scope="session", params=["local-store", "zenml-server"])
def session_cluster(request: pytest.FixtureRequest, session_dir: Path) -> Iterator[Cluster]:
    """The steps' MLflow server behind a counting proxy and a harness stack, on either ZenML store.

    local-store: the session's SQLite store. zenml-server: the production topology (ZenML server
    over REST, S3 artifact store on moto, PostgreSQL + S3 MLflow server).
    """
    with ExitStack() as parts:
        if request.param == "zenml-server":
            top = request.getfixturevalue("topology_session")
            server, connected = top.mlflow, top.connected
        else:
            server, connected = parts.enter_context(local_parts(request, session_dir)), nullcontext
        proxy = parts.enter_context(Proxy(server.url))
        with connected():
            stack_id = harness_stack(proxy.url)
        yield Cluster(
            server, proxy, stack_id, session_dir / f"step-logs-{request.param}", connected
        )


def harness_stack(tracking_uri: str) -> str:
    """Register the harness orchestrator and a tracker on the active stack's artifact store."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    try:
        client.get_flavor_by_name_and_type("process_harness", StackComponentType.ORCHESTRATOR)
    except KeyError:
        client.create_flavor(
            source="testsupport.harness.HarnessOrchestratorFlavor",
            component_type=StackComponentType.ORCHESTRATOR,
        )
    orchestrator = client.create_stack_component(
        "harness", "process_harness", StackComponentType.ORCHESTRATOR, {}
    )
    tracker = client.create_stack_component(
        "plus_postgres", "mlflow_plus", StackComponentType.EXPERIMENT_TRACKER,
        {"tracking_uri": tracking_uri},
    )  # fmt: skip
    artifact_store = client.active_stack_model.components[StackComponentType.ARTIFACT_STORE][0]
    stack = client.create_stack(
        "harness",
        components={
            StackComponentType.ARTIFACT_STORE: [artifact_store.id],
            StackComponentType.ORCHESTRATOR: [orchestrator.id],
            StackComponentType.EXPERIMENT_TRACKER: [tracker.id],
        },
    )
    return str(stack.id)


@pytest.fixture
def cluster(session_cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster, with this test connected to its ZenML store."""
    with session_cluster.connected():
        yield session_cluster


def snapshot_of(pipeline: Any, cluster: Cluster) -> Any:
    """Create a snapshot of `pipeline` on the harness stack, without running it."""
    from zenml.client import Client

    client = Client()
    previous = client.active_stack_model.id
    client.activate_stack(cluster.stack_id)
    try:
        return pipeline.create_snapshot(name=f"{pipeline.name}-{uuid.uuid4().hex[:8]}")
    finally:
        client.activate_stack(previous)
