"""The production topology on 127.0.0.1: a ZenML server, S3 (moto) and a PostgreSQL MLflow server.

The client and every step process talk to the ZenML server over REST with a service account's API
key, through a counting proxy; ZenML's artifact store is an `s3` artifact store on moto, and the
MLflow server keeps its artifacts in another moto bucket. `python -m testsupport.topology`
(`make topology`) starts it for a user and stops it on Ctrl-C.
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testsupport.postgres import Postgres
from testsupport.proxy import Proxy
from testsupport.servers import MlflowServer, free_port, stop, wait_for_health

ROOT = Path(__file__).resolve().parents[1]
# moto accepts any credentials; these only have to be the same on every side.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "topology",
    "AWS_SECRET_ACCESS_KEY": "topology-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
ZENML_BUCKET = "zenml-artifacts"
MLFLOW_BUCKET = "mlflow-artifacts"
ADMIN = "admin"
USER = "tester"
STACK = "topology"


class Moto:
    """moto in server mode: an S3 endpoint on 127.0.0.1 (MinIO is not installable here)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *buckets: str) -> "Moto":
        """Start the server and create the buckets."""
        import boto3

        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **AWS_ENV},
                start_new_session=True,
            )  # fmt: skip
        wait_for_health(self.url, self.process, self.log, path="/moto-api/data.json")
        s3 = boto3.client("s3", endpoint_url=self.url, **_boto_credentials())
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stop(self.process)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


class ZenmlServer:
    """ZenML's server app under uvicorn (SQLite store), activated with an admin user."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "zenml-server.log"
        self.password = secrets.token_urlsafe(12)
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ZenmlServer":
        """Start the server and wait until /health answers."""
        # The server process must not see a client's store settings: its own store is SQLite.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
        env |= AWS_ENV | {
            "ZENML_CONFIG_PATH": str(self._workdir / "server-config"),
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_STORE_URL": f"sqlite:///{self._workdir}/zenml.db",
            "ZENML_SERVER_AUTO_ACTIVATE": "true",
            "ZENML_DEFAULT_USER_NAME": ADMIN,
            "ZENML_DEFAULT_USER_PASSWORD": self.password,
            "ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32),
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app",
                    "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                ],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self._workdir,
                start_new_session=True,
            )  # fmt: skip
        wait_for_health(self.url, self.process, self.log)
        return self

    def _call(self, method: str, path: str, token: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.url}/api/v1{path}", method=method, data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def login(self) -> str:
        """Return an access token of the admin user (the dashboard's login, over the API)."""
        form = urllib.parse.urlencode({"username": ADMIN, "password": self.password}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/login", data=form, timeout=60) as answer:
            return str(json.loads(answer.read())["access_token"])

    def service_account_key(self, name: str) -> str:
        """Create a service account and return a new API key of it."""
        token = self.login()
        account = self._call("POST", "/service_accounts", token, {"name": name, "active": True})
        key = self._call(
            "POST", f"/service_accounts/{account['id']}/api_keys", token, {"name": f"{name}-key"}
        )
        return str(key["body"]["key"])

    def create_user(self, name: str) -> str:
        """Create a dashboard user who has answered the onboarding survey; return its password."""
        password = secrets.token_urlsafe(12)
        user = {
            "name": name, "password": password, "active": True, "is_admin": False,
            "email_opted_in": False, "user_metadata": {"finished_onboarding_survey": True},
        }  # fmt: skip
        self._call("POST", "/users", self.login(), user)
        return password

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stop(self.process)


@dataclass
class Topology:
    """The running parts and what a client needs to use them."""

    zenml: ZenmlServer
    zenml_proxy: Proxy
    moto: Moto
    mlflow: MlflowServer
    client_env: dict[str, str]
    password: str
    """The dashboard password of USER."""
    stack_id: str = ""

    @contextmanager
    def connected(self) -> Iterator[None]:
        """Point this process's ZenML client (and the step processes it starts) at the server."""
        from zenml.client import Client
        from zenml.config.global_config import GlobalConfiguration

        saved = {key: os.environ.get(key) for key in self.client_env}
        os.environ.update(self.client_env)
        GlobalConfiguration._reset_instance()
        Client._reset_instance()
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            GlobalConfiguration._reset_instance()
            Client._reset_instance()


@contextmanager
def topology(workdir: Path, *, zenml_port: int | None = None) -> Iterator[Topology]:
    """Start every part, newest-first stopped on exit."""
    with ExitStack() as parts:
        moto = Moto(workdir).start(ZENML_BUCKET, MLFLOW_BUCKET)
        parts.callback(moto.stop)
        postgres = Postgres().start()
        parts.callback(postgres.stop)
        mlflow = MlflowServer(
            workdir / "mlflow",
            backend_store_uri=postgres.uri,
            artifacts_destination=f"s3://{MLFLOW_BUCKET}",
            env={**AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": moto.url},
        ).launch()
        parts.callback(mlflow.stop)
        zenml = ZenmlServer(workdir, port=zenml_port).start()
        parts.callback(zenml.stop)
        mlflow.wait()
        proxy = Proxy(zenml.url).__enter__()
        parts.callback(proxy.__exit__, None, None, None)
        # The client's own global config: the session's stays on its local store.
        client_env = AWS_ENV | {
            "ZENML_CONFIG_PATH": str(workdir / "client-config"),
            "ZENML_STORE_URL": proxy.url,
            "ZENML_STORE_API_KEY": zenml.service_account_key("pipelines"),
        }
        yield Topology(zenml, proxy, moto, mlflow, client_env, zenml.create_user(USER))


def register_stack(
    name: str,
    *,
    s3_url: str,
    tracking_uri: str,
    orchestrator: str = "local",
    tracker: str = "mlflow_plus",
) -> str:
    """Register the flavor, the S3 artifact store, a tracker and stack `name`; return its id.

    Call it connected. `orchestrator` is a registered orchestrator flavor; the tracker's default
    name is the one the examples and test pipelines ask for.
    """
    from click.testing import CliRunner
    from zenml.client import Client
    from zenml.enums import StackComponentType as Kind

    from tracker_flavor.cli.main import cli

    result = CliRunner().invoke(cli, ["install"])  # the flavor, as a user registers it
    assert result.exit_code == 0, result.output
    client = Client()
    try:
        store = client.get_stack_component(Kind.ARTIFACT_STORE, "s3")
    except KeyError:
        store = client.create_stack_component(
            "s3", "s3", Kind.ARTIFACT_STORE,
            {"path": f"s3://{ZENML_BUCKET}", "client_kwargs": {"endpoint_url": s3_url}},
        )  # fmt: skip
    components = {
        Kind.ARTIFACT_STORE: store.id,
        Kind.ORCHESTRATOR: client.create_stack_component(
            f"{name}-{orchestrator}", orchestrator, Kind.ORCHESTRATOR, {}
        ).id,
        Kind.EXPERIMENT_TRACKER: client.create_stack_component(
            tracker, "mlflow_plus", Kind.EXPERIMENT_TRACKER, {"tracking_uri": tracking_uri}
        ).id,
    }
    stack = client.create_stack(name, components={k: [v] for k, v in components.items()})
    return str(stack.id)


@pytest.fixture(scope="session")
def topology_session(session_dir: Path) -> Iterator[Topology]:
    """The topology for the whole test session, with stack `topology` registered."""
    with topology(session_dir / "topology") as top:
        with top.connected():
            from zenml.client import Client

            top.stack_id = register_stack(STACK, s3_url=top.moto.url, tracking_uri=top.mlflow.url)
            Client().activate_stack(top.stack_id)
        yield top


@pytest.fixture
def on_topology(topology_session: Topology) -> Iterator[Topology]:
    """Connect this test to the ZenML server, with stack `topology` active."""
    from zenml.client import Client

    with topology_session.connected():
        Client().activate_stack(topology_session.stack_id)
        yield topology_session


def main() -> None:
    """Start the topology, register a stack, write an env file and wait for Ctrl-C."""
    workdir = Path(os.environ.get("TOPOLOGY_DIR") or tempfile.mkdtemp(prefix="zenml-topology-"))
    port = int(os.environ.get("TOPOLOGY_ZENML_PORT") or 0) or None
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
    print("starting moto (S3), PostgreSQL, the MLflow server and the ZenML server ...", flush=True)
    with topology(workdir, zenml_port=port) as top, top.connected():
        from zenml.client import Client

        stack = register_stack(STACK, s3_url=top.moto.url, tracking_uri=top.mlflow.url)
        Client().activate_stack(stack)
        env_file = workdir / "env"
        # Like `make demo`: no ZenML repository, step sources resolve against the project root.
        client = top.client_env | {
            "ZENML_ANALYTICS_OPT_IN": "false",
            "ZENML_REPOSITORY_PATH": str(workdir / "no-repository"),
            "ZENML_CUSTOM_SOURCE_ROOT": str(ROOT),
        }
        env_file.write_text("".join(f"export {k}={v}\n" for k, v in client.items()))
        env_file.chmod(0o600)
        print(
            f"\nZenML dashboard  {top.zenml.url}  (user {USER}, password {top.password})\n"
            f"MLflow UI        {top.mlflow.url}\n"
            f"S3 (moto)        {top.moto.url}\n\n"
            f"In another shell:  source {env_file}  then run a pipeline, e.g.\n"
            f"  .venv/bin/python -m examples.quickstart.run\n\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    main()
