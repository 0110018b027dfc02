"""A request carries the credentials of its own server's connection, whichever thread sends it."""

import importlib.util
import os
import threading
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.mlflow.credentials import (
    RequestAuth,
    ServerCredentials,
    WorkspaceConfigProvider,
)
from tracker_flavor.mlflow.internals import Internals
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit


def header(auth: RequestAuth, url: str) -> str | None:
    request = SimpleNamespace(url=url, headers={"Authorization": "Basic from-a-file"})
    return auth(request).headers.get("Authorization")


def test_a_request_gets_the_credentials_of_its_server_only():
    held = ServerCredentials()
    auth = RequestAuth(held)
    server = Connection("http://127.0.0.1:5000/mlflow", token=SecretStr("t1"))
    held.enter(server)
    assert header(auth, "http://127.0.0.1:5000/mlflow/api/2.0/mlflow/runs/get") == "Bearer t1"
    # Another server, or a look-alike prefix, keeps what MLflow put there.
    assert header(auth, "http://127.0.0.1:5000/mlflowx/api") == "Basic from-a-file"
    assert header(auth, "http://other:5000/api") == "Basic from-a-file"
    # The longest prefix wins: a second server mounted under the first's path.
    inner = Connection("http://127.0.0.1:5000/mlflow/team", token=SecretStr("t2"))
    held.enter(inner)
    assert header(auth, "http://127.0.0.1:5000/mlflow/team/api") == "Bearer t2"
    held.leave(inner)
    held.leave(server)
    assert held.find("http://127.0.0.1:5000/mlflow/api") is None
    assert header(auth, "http://127.0.0.1:5000/mlflow/api") == "Basic from-a-file"


def test_one_server_two_credentials_the_thread_s_own_step_wins_else_the_latest():
    held = ServerCredentials()
    auth = RequestAuth(held)
    alice = Connection("http://h:1", username="alice", password=SecretStr("a"))
    bob = Connection("http://h:1", username="bob", password=SecretStr("b"))
    held.enter(alice)
    seen: dict[str, str | None] = {}

    def other_step() -> None:
        held.enter(bob)
        seen["bob's thread"] = header(auth, "http://h:1/api")
        started.set()
        done.wait()
        held.leave(bob)

    started, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=other_step)
    thread.start()
    started.wait()
    seen["alice's thread"] = header(auth, "http://h:1/api")
    user_thread = threading.Thread(target=lambda: seen.update(user=header(auth, "http://h:1/api")))
    user_thread.start()
    user_thread.join()
    done.set()
    thread.join()
    assert seen == {
        "bob's thread": bob.authorization(),
        "alice's thread": alice.authorization(),
        "user": bob.authorization(),  # a thread of no step: the one entered last
    }
    # A rotated secret: the same server entered again with a new password is the latest.
    rotated = Connection("http://h:1", username="alice", password=SecretStr("a2"))
    held.enter(rotated)
    assert header(auth, "http://h:1/api") == rotated.authorization()


def test_a_request_to_no_held_server_goes_to_the_provider_named_before():
    calls = []

    def previous(request):
        calls.append(request.url)
        request.headers["Authorization"] = "Bearer k8s"
        return request

    assert header(RequestAuth(ServerCredentials(), previous), "http://x/api") == "Bearer k8s"
    assert calls == ["http://x/api"]


def test_configure_holds_one_connection_per_server_for_good_beside_the_steps():
    held = ServerCredentials()
    old = Connection("http://h:1", token=SecretStr("old"))
    new = Connection("http://h:1", token=SecretStr("new"))
    held.configure(old)
    held.enter(old)  # a step of the same tracker
    held.configure(new)  # configure_mlflow again, after a rotation
    held.leave(old)
    assert held.find("http://h:1/api") == new
    held.configure(new)
    assert held.find("http://h:1/api") == new


@pytest.fixture
def workspace_seam(monkeypatch):
    """A seam with the tracker's Databricks config provider installed; no DATABRICKS_* set."""
    for name in [name for name in os.environ if name.startswith("DATABRICKS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_ENABLE_DB_SDK", "false")
    monkeypatch.setenv("HOME", "/nonexistent")  # no ~/.databrickscfg either
    runtime.reset()  # nor the runtime's provider, holding what an earlier tracker configured
    seam, held = Internals(Once()), ServerCredentials()
    seam.install_workspace_config(lambda previous: WorkspaceConfigProvider(held, seam, previous))
    seam.fall_back_from_sdk_artifacts(lambda: held.find("databricks") is not None)
    yield held
    seam.uninstall()


def test_mlflow_takes_databricks_credentials_from_the_held_connection(workspace_seam):
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.utils.databricks_utils import get_databricks_host_creds

    held = workspace_seam
    artifacts = "dbfs:/databricks/mlflow-tracking/1/abc/artifacts"
    with pytest.raises(MlflowException):
        get_databricks_host_creds("databricks")
    pat = Connection("databricks", token=SecretStr("dapi-1"), databricks_host="https://adb.net")
    held.enter(pat)
    creds = get_databricks_host_creds("databricks")
    assert (creds.host, creds.token, creds.username) == ("https://adb.net", "dapi-1", None)
    # The run's artifact repository is built without credentials in the environment.
    assert get_artifact_repository(artifacts) is not None
    basic = Connection("databricks", username="u", password=SecretStr("pw"),
                       databricks_host="https://adb.net")  # fmt: skip
    held.enter(basic)
    creds = get_databricks_host_creds("databricks")
    assert (creds.username, creds.password, creds.token) == ("u", "pw", None)
    held.leave(basic)
    held.leave(pat)
    with pytest.raises(MlflowException):
        get_databricks_host_creds("databricks")
    if importlib.util.find_spec("mlflow.store.artifact.databricks_sdk_artifact_repo"):
        # MLflow 3, not held: the SDK repository's own failure stands.
        with pytest.raises(ValueError, match="cannot configure default credentials"):
            get_artifact_repository(artifacts)
