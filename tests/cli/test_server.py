"""`zenml-mlflow server` and `check` as real subprocesses against one basic-auth server."""

import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from zenml.client import Client

from tests.cli.conftest import StartedServer, tracker, zenml_mlflow
from testsupport.proxy import Proxy
from testsupport.servers import free_port
from testsupport.tls import self_signed_certificate
from tracker_flavor.cli.main import cli
from tracker_flavor.cli.server import DataDir, ServerState, port_in_use

pytestmark = pytest.mark.integration

SCENARIOS = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


@pytest.fixture(scope="module")
def checks(zenml_stack, basic_auth_server: StartedServer, session_dir: Path):
    """Run `zenml-mlflow check` on four trackers at once: good, wrong password, TLS twice."""
    client = Client()
    client.create_secret(
        "cli_good", values={"user": "admin", "pw": basic_auth_server.admin_password}
    )
    client.create_secret("cli_wrong", values={"user": "admin", "pw": "not-the-password"})
    good = {"tracking_username": "{{cli_good.user}}", "tracking_password": "{{cli_good.pw}}"}
    key, cert = self_signed_certificate(session_dir / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Proxy(basic_auth_server.url) as proxy:
        proxy._server.socket = context.wrap_socket(proxy._server.socket, server_side=True)
        tls_url = proxy.url.replace("http://", "https://")
        names = [
            tracker("check_good", tracking_uri=basic_auth_server.url, **good),
            tracker(
                "check_wrong",
                tracking_uri=basic_auth_server.url,
                tracking_username="{{cli_wrong.user}}",
                tracking_password="{{cli_wrong.pw}}",
            ),
            tracker("check_tls", tracking_uri=tls_url, **good),
            tracker("check_tls_insecure", tracking_uri=tls_url, tracking_insecure_tls=True, **good),
        ]
        with ThreadPoolExecutor(len(names)) as pool:
            results = pool.map(lambda name: zenml_mlflow("check", name, "--timeout", "60"), names)
            return dict(zip(names, results, strict=True))


def test_start_replaced_the_stale_pid_file_and_keeps_the_password_private(basic_auth_server):
    out = basic_auth_server.started.stdout
    assert "removed a stale PID file" in out
    assert f"MLflow server running at {basic_auth_server.url}" in out
    assert f"password in {basic_auth_server.data_dir / 'admin-password'}" in out
    assert (basic_auth_server.data_dir / "admin-password").stat().st_mode & 0o777 == 0o600
    pid = int((basic_auth_server.data_dir / "server.pid").read_text())
    assert f"(pid {pid})" in out


def test_status_reports_a_healthy_server_as_json(basic_auth_server):
    status = zenml_mlflow(
        "server", "status", "--data-dir", str(basic_auth_server.data_dir), "-o", "json"
    )
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    assert summary["running"] and summary["healthy"] and summary["basic_auth"]
    assert summary["url"] == basic_auth_server.url


def test_second_start_is_refused(basic_auth_server):
    again = zenml_mlflow(
        "server", "start", "--data-dir", str(basic_auth_server.data_dir), "--port", str(free_port())
    )
    assert again.returncode == 1
    assert (
        again.stderr.startswith("Error: the MLflow server of") and "already running" in again.stderr
    )
    assert again.stderr.count("\n") == 1


def test_busy_port_is_refused_before_anything_starts(basic_auth_server, tmp_path):
    busy = zenml_mlflow(
        "server", "start", "--data-dir", str(tmp_path), "--port", str(basic_auth_server.port)
    )
    assert busy.returncode == 1
    assert f"port {basic_auth_server.port} on 127.0.0.1 is already in use" in busy.stderr
    assert not (tmp_path / "server.pid").exists()


def test_start_gives_up_after_its_timeout_and_leaves_nothing_running(tmp_path):
    import psutil

    slow = zenml_mlflow(
        "server", "start", "--data-dir", str(tmp_path), "--port", str(free_port()), "--timeout", "1"
    )
    assert slow.returncode == 1
    assert "did not answer" in slow.stderr and "within 1 s and was stopped" in slow.stderr
    assert not (tmp_path / "server.pid").exists()
    time.sleep(1)
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]


def test_a_server_that_exits_shows_the_end_of_its_log(tmp_path):
    broken = zenml_mlflow(
        "server", "start", "--data-dir", str(tmp_path), "--port", str(free_port()),
        "--backend-store-uri", "bogus://nowhere",
    )  # fmt: skip
    assert broken.returncode == 1
    assert "got unsupported URI 'bogus://nowhere'" in broken.stderr
    assert broken.stderr.splitlines()[-1] == (
        f"Error: the MLflow server exited with code 1: its log is above and in {tmp_path}/server.log."
    )
    assert not (tmp_path / "server.pid").exists()


def test_stop_never_ends_a_process_it_did_not_start(tmp_path):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        DataDir(tmp_path).write_state(ServerState(stranger.pid, 1.0, "", "", "", False, ""))
        stop = zenml_mlflow("server", "stop", "--data-dir", str(tmp_path))
        assert stop.returncode == 0 and "nothing was stopped" in stop.stdout
        assert stranger.poll() is None
        assert not (tmp_path / "server.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_logs_show_the_server_output(basic_auth_server):
    logs = zenml_mlflow(
        "server", "logs", "--data-dir", str(basic_auth_server.data_dir), "-n", "400"
    )
    assert logs.returncode == 0
    assert "Uvicorn running on" in logs.stdout


def test_the_basic_auth_scenario_as_written_lets_its_user_in(basic_auth_server, monkeypatch):
    section = SCENARIOS.read_text().split("## 3. ", 1)[1].split("\n## ", 1)[0]
    commands = [
        shlex.split(line, comments=True)
        for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
        for line in block.splitlines()
        if line.startswith(("zenml secret create", "zenml-mlflow server add-user"))
    ]
    (secret,) = [c for c in commands if c[0] == "zenml"]
    user = dict(arg.removeprefix("--").split("=", 1) for arg in secret[4:])["username"]
    (add_user,) = [c for c in commands if c[0] == "zenml-mlflow"]
    assert add_user[3:] == [user]
    monkeypatch.setenv("ZENML_MLFLOW_DATA_DIR", str(basic_auth_server.data_dir))
    added = CliRunner().invoke(cli, add_user[1:], input="docs-password-1\ndocs-password-1\n")
    assert added.exit_code == 0, added.output
    assert added.output.endswith(
        f"added user {user!r} to {basic_auth_server.url}: it may read every experiment and "
        "write to its own\n"
    )
    # What a pipeline run by the user does first: create its experiment, then log to it.
    created = as_user(
        basic_auth_server, user, "docs-password-1", "experiments/create", {"name": user}
    )
    experiment_id = created["experiment_id"]
    run = as_user(
        basic_auth_server, user, "docs-password-1", "runs/create", {"experiment_id": experiment_id}
    )
    assert run["run"]["info"]["experiment_id"] == experiment_id
    with pytest.raises(urllib.error.HTTPError) as refused:
        as_user(basic_auth_server, user, "not-the-pw", "experiments/search", {"max_results": 1})
    assert refused.value.code == 401

    again = CliRunner().invoke(cli, [*add_user[1:], "--password", "other-password-1"])
    assert again.exit_code == 1
    assert f"refused to add user {user!r} (HTTP 400)" in again.output
    admin = CliRunner().invoke(
        cli, ["server", "add-user", "root2", "--password", "root2-password-1", "--admin"]
    )
    assert admin.exit_code == 0, admin.output
    assert api(basic_auth_server, "users/get?username=root2")["user"]["is_admin"] is True


def as_user(server: StartedServer, user: str, password: str, path: str, body: dict) -> dict:
    """POST to the MLflow REST API as `user`."""
    token = b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_check_passes_on_a_reachable_server_and_leaves_no_probe_run(checks, basic_auth_server):
    good = checks["check_good"]
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "✓ secrets", "✓ connect", "✓ server", "✓ auth", "✓ probe"
    ]  # fmt: skip
    assert f"MLflow {mlflow.__version__}" in lines[2] and " ms" in lines[4]
    assert lines[-1] == "experiment tracker 'check_good' is usable."
    experiment = api(
        basic_auth_server, "experiments/get-by-name?experiment_name=zenml-mlflow-check"
    )
    assert experiment["experiment"]["lifecycle_stage"] == "deleted"
    listed = api(basic_auth_server, "experiments/search", {"max_results": 100})["experiments"]
    assert "zenml-mlflow-check" not in {e["name"] for e in listed}  # the UI's list
    search = {"experiment_ids": [experiment["experiment"]["experiment_id"]], "run_view_type": "ALL"}
    found = api(basic_auth_server, "runs/search", search)["runs"]
    # Two checks ran at once (good, insecure TLS): each may have created the run, none deleted one.
    assert 1 <= len(found) <= 2
    assert {(run["info"]["run_name"], run["info"]["lifecycle_stage"]) for run in found} == {
        ("probe", "deleted")  # with its experiment
    }
    again = zenml_mlflow("check", "check_good", "--timeout", "60")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(api(basic_auth_server, "runs/search", search)["runs"]) == len(found)
    assert "zenml-mlflow-check" not in {
        e["name"]
        for e in api(basic_auth_server, "experiments/search", {"max_results": 100})["experiments"]
    }


def api(server: StartedServer, path: str, body: dict | None = None) -> dict:
    """Call the MLflow REST API as the admin user."""
    token = b64encode(f"admin:{server.admin_password}".encode()).decode()
    request = urllib.request.Request(
        f"{server.url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def test_check_names_the_credentials_on_a_wrong_password(checks):
    wrong = checks["check_wrong"]
    assert wrong.returncode == 1
    last = wrong.stdout.splitlines()[-1]
    assert last.startswith("✗ auth: authentication to http://127.0.0.1:")
    assert "HTTP 401" in last and "tracking_username/tracking_password" in last
    assert wrong.stderr == "Error: experiment tracker 'check_wrong' is not usable.\n"


def test_check_explains_a_self_signed_certificate(checks):
    strict = checks["check_tls"]
    assert strict.returncode == 1
    last = strict.stdout.splitlines()[-1]
    assert last.startswith("✗ tls: TLS verification of https://127.0.0.1:")
    assert "tracking_insecure_tls=True" in last
    insecure = checks["check_tls_insecure"]
    assert insecure.returncode == 0, insecure.stdout + insecure.stderr
    assert "✓ tls: certificate NOT verified (tracking_insecure_tls=True)" in insecure.stdout


def test_stop_ends_the_server_and_its_workers(basic_auth_server, checks):
    import psutil

    pid = int((basic_auth_server.data_dir / "server.pid").read_text())
    group = [p for p in psutil.process_iter() if _group(p) == pid]
    assert group
    stop = zenml_mlflow("server", "stop", "--data-dir", str(basic_auth_server.data_dir))
    assert stop.returncode == 0 and f"(pid {pid})" in stop.stdout
    deadline = time.monotonic() + 10
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group):
        assert time.monotonic() < deadline, "server processes outlived stop"
        time.sleep(0.2)
    status = zenml_mlflow("server", "status", "--data-dir", str(basic_auth_server.data_dir))
    assert status.returncode == 1 and "is not running" in status.stderr


def _group(process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_two_starts_at_once_then_stop_after_the_parent_was_killed(tmp_path):
    import psutil

    data_dir = tmp_path / "fresh"
    port, other = free_port(), free_port()
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(
            lambda p: zenml_mlflow(
                "server", "start", "--data-dir", str(data_dir), "--port", str(p)
            ),
            [port, other],
        )
    started = [r for r in (first, second) if r.returncode == 0]
    refused = [r for r in (first, second) if r.returncode != 0]
    assert len(started) == 1 and len(refused) == 1, first.stderr + second.stderr
    assert "already running" in refused[0].stderr and refused[0].stderr.count("\n") == 1
    state = DataDir(data_dir).read_state()
    assert state is not None and state.group == state.pid
    port = int(state.url.rsplit(":", 1)[1])

    # No job runner by default: the server and its uvicorn worker.
    group = [p for p in psutil.process_iter() if _group(p) == state.group]
    assert len(group) == 2, [p.cmdline() for p in group]

    parent = psutil.Process(state.pid)
    parent.send_signal(signal.SIGKILL)  # the parent dies; its worker keeps the port
    parent.wait(10)
    assert port_in_use("127.0.0.1", port)
    status = zenml_mlflow("server", "status", "--data-dir", str(data_dir), "-o", "json")
    assert json.loads(status.stdout)["running"] is True
    stop = zenml_mlflow("server", "stop", "--data-dir", str(data_dir))
    assert stop.returncode == 0 and "stopped the MLflow server" in stop.stdout
    assert not port_in_use("127.0.0.1", port)
    assert not [p for p in psutil.process_iter() if _group(p) == state.group and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]  # fmt: skip


def test_basic_auth_without_the_auth_extra_names_the_extra(tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "flask_wtf.py").write_text("raise ImportError(\"No module named 'flask_wtf'\")\n")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "zenml-mlflow"), "server", "start", "--basic-auth",
         "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(shim)},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "Error: --basic-auth needs MLflow's auth extra, which is not installed: "
        "pip install 'zenml-mlflow-tracker[server]' (or 'mlflow[auth]').\n"
    )
    assert not (tmp_path / "data" / "server.pid").exists()
