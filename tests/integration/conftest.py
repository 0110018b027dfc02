"""Fixtures for integration tests: a real ZenML store with the flavor and stacks registered."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

TRACKER = "mlflow_plus"


@pytest.fixture(scope="session")
def zenml_stack(session_dir: Path) -> str:
    """Register the flavor and an `mlflow_plus` tracker on an embedded-store stack, once."""
    from click.testing import CliRunner
    from zenml.client import Client

    from tracker_flavor.cli.main import cli

    result = CliRunner().invoke(cli, ["install", "--stack", "embedded", "--tracker", TRACKER])
    assert result.exit_code == 0, result.output
    assert Client().active_stack_model.name == "embedded"
    return "embedded"


@pytest.fixture(scope="session")
def embedded_client(zenml_stack: str) -> Any:
    """Return an MlflowClient on the embedded store of the active stack."""
    from mlflow import MlflowClient
    from zenml.client import Client

    from tracker_flavor.mlflow.embedded import embedded_tracking_uri
    from tracker_flavor.runtime import runtime

    path = Client().active_stack.artifact_store.path
    return MlflowClient(embedded_tracking_uri(path, runtime.mlflow.stores))


@pytest.fixture
def process_snapshot() -> Iterator[dict[str, Any]]:
    """Record the MLflow-relevant process state before a test; compare it afterwards."""
    import mlflow
    from mlflow.tracking import fluent

    def state() -> dict[str, Any]:
        return {
            "env": {
                k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "DATABRICKS_"))
            },
            "tracking_uri": mlflow.get_tracking_uri(),
            "active_experiment": fluent._active_experiment_id,
            "active_run": mlflow.active_run(),
        }

    before = state()
    yield before
    assert state() == before


@pytest.fixture
def isolated_mlflow_environment() -> Iterator[None]:
    """Undo what configure_mlflow() leaves in the process (its contract, as the built-in's)."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    from tracker_flavor.runtime import runtime

    environment = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(environment)
    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None
    runtime.reset()  # the credentials it held for the rest of the process


@pytest.fixture
def tracker_stack(zenml_stack: str) -> Iterator[Callable[..., str]]:
    """Register an mlflow_plus tracker with a config in its own stack and activate it."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from tracker_flavor.cli.components import create_stack_with_tracker

    client = Client()
    created: list[str] = []

    def make(name: str, **config: Any) -> str:
        tracker = client.create_stack_component(
            name=name, flavor="mlflow_plus",
            component_type=StackComponentType.EXPERIMENT_TRACKER, configuration=config,
        )  # fmt: skip
        create_stack_with_tracker(f"stack_{name}", tracker.id)
        client.activate_stack(f"stack_{name}")
        created.append(name)
        return name

    yield make
    client.activate_stack(zenml_stack)
    for name in created:
        client.delete_stack(f"stack_{name}", recursive=False)
        client.delete_stack_component(name, StackComponentType.EXPERIMENT_TRACKER)


@contextmanager
def links_on_port(port: int) -> Iterator[str]:
    """Point the session tracker's step links (ui_url) at `port` for the test; yield its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import stack as stack_module

    client = Client()
    kind = StackComponentType.EXPERIMENT_TRACKER
    client.update_stack_component(
        TRACKER, kind, configuration={"ui_url": f"http://127.0.0.1:{port}"}
    )
    # ZenML caches stacks by (id, stack's update time): a component update alone is not seen.
    stack_module._STACK_CACHE.clear()
    try:
        yield TRACKER
    finally:
        client.update_stack_component(TRACKER, kind, configuration={"ui_url": None})
        stack_module._STACK_CACHE.clear()
        assert "ui_url" not in client.get_stack_component(kind, TRACKER).configuration
