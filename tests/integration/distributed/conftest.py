"""A PostgreSQL-backed MLflow server behind a counting proxy, and a stack whose steps run as processes."""

import uuid
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def cluster(zenml_stack: str, session_dir: Path) -> Iterator[Cluster]:
    from zenml.client import Client
    from zenml.enums import StackComponentType

    postgres = Postgres().start()
    server = MlflowServer(session_dir / "pg-server", backend_store_uri=postgres.uri).start()
    proxy = Proxy(server.url).__enter__()
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
        {"tracking_uri": proxy.url},
    )  # fmt: skip
    default = client.get_stack("default")
    stack = client.create_stack(
        "harness",
        components={
            StackComponentType.ARTIFACT_STORE: [
                default.components[StackComponentType.ARTIFACT_STORE][0].id
            ],
            StackComponentType.ORCHESTRATOR: [orchestrator.id],
            StackComponentType.EXPERIMENT_TRACKER: [tracker.id],
        },
    )
    try:
        yield Cluster(
            server=server, proxy=proxy, stack_id=str(stack.id), logs=session_dir / "step-logs"
        )
    finally:
        proxy.__exit__(None, None, None)
        server.stop()
        postgres.stop()


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
