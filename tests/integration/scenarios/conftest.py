"""Real tracking servers for the deployment scenarios, started together once per session."""

import base64
import json
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testsupport.servers import MlflowServer
from testsupport.tls import self_signed_certificate

ADMIN_PASSWORD = "admin-pw-for-tests-only"
ALICE_PASSWORD = "alice-pw-for-tests-only"


@dataclass
class Servers:
    plain: MlflowServer
    auth: MlflowServer
    tls: MlflowServer
    certificate: Path


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def api(server: MlflowServer, path: str, body: dict[str, Any], auth: tuple[str, str]) -> Any:
    """POST to the server's REST API as `auth`."""
    request = urllib.request.Request(
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": _basic(*auth)},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


@contextmanager
def environment_watch(*secrets: str) -> Iterator[set[tuple[str, str]]]:
    """Sample os.environ every 2 ms while the block runs; yield every variable holding a secret.

    A variable the block already had on entry, with the same value, is the caller's own and is
    not reported.
    """
    own = set(os.environ.items())
    found: set[tuple[str, str]] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            try:
                items = list(os.environ.items())
            except RuntimeError:  # changed while copied: sample again
                continue
            found.update(
                (name, value)
                for name, value in items
                if (name, value) not in own and any(secret in value for secret in secrets)
            )

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield found
    finally:
        stop.set()
        sampler.join()


@pytest.fixture(scope="session")
def servers(session_dir: Path, mlflow_server: MlflowServer) -> Iterator[Servers]:
    """The shared plain server, a basic-auth server (user alice) and an HTTPS server."""
    root = session_dir / "servers"
    auth_dir = root / "auth"
    auth_dir.mkdir(parents=True)
    (auth_dir / "basic_auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{auth_dir}/basic_auth.db\nadmin_username = admin\n"
        f"admin_password = {ADMIN_PASSWORD}\n"  # MLflow 3.10 and older read it only here
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    key, cert = self_signed_certificate(root / "tls-cert")
    auth = MlflowServer(
        auth_dir,
        basic_auth=True,
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_dir / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret-key",
        },
    )
    tls = MlflowServer(root / "tls", ssl=(key, cert))
    started = [server.launch() for server in (auth, tls)]
    try:
        for server in started:
            server.wait()
        alice = {"username": "alice", "password": ALICE_PASSWORD}
        api(auth, "/api/2.0/mlflow/users/create", alice, ("admin", ADMIN_PASSWORD))
        yield Servers(plain=mlflow_server, auth=auth, tls=tls, certificate=cert)
    finally:
        for server in started:
            server.stop()
