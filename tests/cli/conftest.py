"""Fixtures for the command-line tests: the integration store, and one `zenml-mlflow server`."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import embedded_client, zenml_stack  # noqa: F401
from testsupport.servers import free_port

BIN = Path(sys.executable).parent / "zenml-mlflow"


def tracker(name: str, **config: object) -> str:
    """Register an mlflow_plus tracker component and return its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    Client().create_stack_component(
        name=name,
        flavor="mlflow_plus",
        component_type=StackComponentType.EXPERIMENT_TRACKER,
        configuration=config,
    )
    return name


def zenml_mlflow(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the installed `zenml-mlflow` console script as a real subprocess."""
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class StartedServer:
    data_dir: Path
    port: int
    url: str
    started: subprocess.CompletedProcess[str]

    @property
    def admin_password(self) -> str:
        return (self.data_dir / "admin-password").read_text().strip()


@pytest.fixture(scope="session")
def basic_auth_server(session_dir: Path) -> Iterator[StartedServer]:
    """`zenml-mlflow server start --basic-auth`, over a stale PID file left by a dead process."""
    data_dir = session_dir / "server"
    data_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data_dir / "server.pid").write_text(f"{dead.pid}\n")
    port = free_port()
    started = zenml_mlflow(
        "server", "start", "--data-dir", str(data_dir), "--port", str(port), "--basic-auth"
    )
    assert started.returncode == 0, started.stdout + started.stderr
    yield StartedServer(data_dir, port, f"http://127.0.0.1:{port}", started)
    zenml_mlflow("server", "stop", "--data-dir", str(data_dir))
