"""`zenml-mlflow server`: a local MLflow tracking server in the background, without Docker."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psutil
from rich.console import Console

from tracker_flavor.config.uris import strip_credentials
from tracker_flavor.mlflow import sqlite_store

from .output import output_option, print_json, print_table

if TYPE_CHECKING:
    import requests

DATA_DIR_ENV = "ZENML_MLFLOW_DATA_DIR"
ADMIN_USERNAME = "admin"
GUNICORN_THREADS = 8
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
# MLflow's basic-auth routes (mlflow.server.auth.routes, whose package reads the server's auth
# config when imported).
CREATE_USER = "/api/2.0/mlflow/users/create"
UPDATE_USER_ADMIN = "/api/2.0/mlflow/users/update-admin"
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ServerState:
    """What `start` recorded about the server it launched (server.json in the data directory)."""

    pid: int
    created: float
    url: str
    backend_store_uri: str
    artifacts: str
    basic_auth: bool
    log: str
    # The process group of the server and its workers (0: run in the foreground, pid only).
    group: int = 0


class DataDir:
    """The files of one local server: stores, log, PID file and state."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser().resolve()
        self.pid_file = self.path / "server.pid"
        self.state_file = self.path / "server.json"
        self.log = self.path / "server.log"
        self.admin_password = self.path / "admin-password"

    def read_state(self) -> ServerState | None:
        """Return the recorded server, or None if no PID file is there."""
        if not self.pid_file.exists():
            return None
        try:
            return ServerState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            # A PID file without a readable state cannot be proven ours: it counts as stale.
            pid = self.pid_file.read_text().strip()
            return ServerState(int(pid) if pid.isdigit() else 0, 0.0, "", "", "", False, "")

    def write_state(self, state: ServerState) -> None:
        """Record the launched server: PID file and state."""
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        self.pid_file.write_text(f"{state.pid}\n")

    def clear_state(self) -> None:
        """Forget the recorded server."""
        self.pid_file.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)

    def private_value(self, path: Path) -> str:
        """Return a secret kept in a file of the data directory (0600), generated once."""
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18))
        return path.read_text().strip()


def _in_group(process: psutil.Process, group: int) -> bool:
    """Tell whether a process belongs to the process group `group`."""
    try:
        return os.getpgid(process.pid) == group
    except (ProcessLookupError, PermissionError):
        return False


def server_processes(state: ServerState) -> list[psutil.Process]:
    """Return the live processes of the recorded server: its group, or its PID in the foreground.

    A process started before the server is not ours (a reused PID or group id), nor is, in the
    foreground, a process started at another time than the recorded one.
    """
    if not state.group:
        process = psutil.Process(state.pid)
        return [process] if abs(process.create_time() - state.created) < 1.0 else []
    found = []
    for process in psutil.process_iter():
        try:
            if (
                _in_group(process, state.group)
                and process.create_time() > state.created - 1.0
                and process.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(process)
        except psutil.Error:
            continue
    return found


def is_ours(state: ServerState) -> bool:
    """Tell whether the server `start` launched still runs (any process of its group)."""
    try:
        return bool(server_processes(state))
    except (psutil.Error, ValueError):
        return False


def port_in_use(host: str, port: int) -> bool:
    """Tell whether something already listens on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Tell whether the server at `url` answers /health."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def log_tail(log: Path, lines: int) -> str:
    """Return the last `lines` lines of a log file."""
    if not log.exists():
        return ""
    with log.open(errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines))


def serves_with_gunicorn() -> bool:
    """Tell whether `mlflow server` runs gunicorn (MLflow 2) rather than uvicorn."""
    import mlflow

    return int(mlflow.__version__.split(".")[0]) < 3


def server_command(
    host: str,
    port: int,
    backend_store_uri: str,
    artifacts: Path | None = None,
    basic_auth: bool = False,
) -> list[str]:
    """Return the `mlflow server` command line (one worker), shared by `server start` and `ui`."""
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_store_uri,
    ]  # fmt: skip
    if artifacts is not None:
        command += ["--artifacts-destination", str(artifacts)]
    if basic_auth:
        command += ["--app-name", "basic-auth"]
    if serves_with_gunicorn():  # its default worker answers one request at a time
        command += ["--gunicorn-opts", f"--threads {GUNICORN_THREADS}"]
    return command


def server_environment(jobs: bool) -> dict[str, str]:
    """Return the server's environment: MLflow's job runner (7 more processes) only if asked."""
    import mlflow
    from mlflow import environment_variables

    variable = getattr(environment_variables, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)
    if variable is None:  # MLflow 2 has no job runner
        if jobs:
            raise click.ClickException(
                f"--jobs needs MLflow's job runner, which MLflow {mlflow.__version__} does not "
                "have: leave out --jobs, or install MLflow 3.10 or newer."
            )
        return dict(os.environ)
    return {**os.environ, variable.name: str(jobs).lower()}


def jobs_option(command: Any) -> Any:
    """Add `--jobs`, shared by `server start` and `ui`."""
    return click.option(
        "--jobs",
        is_flag=True,
        help="Also run MLflow's job runner (GenAI evaluation jobs): 7 more processes, ~2 GB.",
    )(command)


def check_port_free(host: str, port: int, fix: str) -> None:
    """Fail with one line if something already listens on host:port."""
    if port_in_use(host, port):
        raise click.ClickException(
            f"port {port} on {host} is already in use by another process: {fix}"
        )


def prepare_sqlite_store(backend_store_uri: str) -> None:
    """Create a local SQLite store once before the server opens it; fail if it needs a repair."""
    from tracker_flavor.runtime import runtime

    if (path := sqlite_store.sqlite_path(backend_store_uri)) is not None:
        runtime.mlflow.stores.prepare(path)


def require_auth_extra() -> None:
    """Fail with the install command if MLflow's basic-auth app cannot be imported."""
    try:
        import flask_wtf  # noqa: F401  (what the `mlflow[auth]` extra adds)
    except ImportError:
        raise click.ClickException(
            "--basic-auth needs MLflow's auth extra, which is not installed: "
            "pip install 'zenml-mlflow-tracker[server]' (or 'mlflow[auth]')."
        ) from None


def auth_environment(data: DataDir) -> dict[str, str]:
    """Return the variables of MLflow's basic-auth app, with its files in the data directory."""
    from mlflow import environment_variables

    password = os.environ.get(ADMIN_PASSWORD_ENV) or data.private_value(data.admin_password)
    # MLflow without this variable (3.10 and older) reads the admin password from the file only.
    in_file = not hasattr(environment_variables, ADMIN_PASSWORD_ENV)
    config = data.path / "basic_auth.ini"
    config.touch()
    config.chmod(0o600)
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{data.path / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN_USERNAME}\n"
        + (f"admin_password = {password}\n" if in_file else "")
        + "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        ADMIN_PASSWORD_ENV: password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": data.private_value(data.path / "flask-secret-key"),
    }


def check_not_running(data: DataDir) -> None:
    """Fail if this data directory's server runs; drop a stale PID file."""
    state = data.read_state()
    if state is None:
        return
    if is_ours(state):
        raise click.ClickException(
            f"the MLflow server of {data.path} is already running (pid {state.pid}) at "
            f"{state.url}: stop it first with `zenml-mlflow server stop`."
        )
    data.clear_state()
    click.echo(f"removed a stale PID file (process {state.pid} is not running)")


def wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float
) -> None:
    """Show a spinner until /health answers; fail with the log's last lines otherwise."""
    deadline = time.monotonic() + timeout
    with Console(stderr=True).status(f"starting MLflow server at {url} ..."):
        while time.monotonic() < deadline:
            if process.poll() is not None:
                click.echo(log_tail(log, LOG_TAIL_LINES), err=True)
                raise click.ClickException(
                    f"the MLflow server exited with code {process.returncode}: its log is above "
                    f"and in {log}."
                )
            if is_healthy(url):
                return
            time.sleep(0.5)
    click.echo(log_tail(log, LOG_TAIL_LINES), err=True)
    raise click.ClickException(
        f"the MLflow server did not answer {url}/health within {timeout:g} s and was stopped: "
        f"its log is above and in {log}; raise --timeout on a slow machine."
    )


def terminate(processes: list[psutil.Process], grace: float = 20.0) -> None:
    """End the server's processes: SIGTERM, then SIGKILL for those alive after `grace` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            try:
                process.send_signal(sig)
            except psutil.Error:
                pass
        _, processes = psutil.wait_procs(processes, timeout=grace)
        if not processes:
            return


def data_dir_option(command: Any) -> Any:
    """Add `--data-dir`, shared by the server commands."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=DATA_DIR_ENV,
        default=lambda: click.get_app_dir("zenml-mlflow"),
        show_default="the user config dir's zenml-mlflow, or $" + DATA_DIR_ENV,
        help="Directory of the server's SQLite store, artifacts, log and PID file.",
    )(command)


@click.group()
def server() -> None:
    """Run a local MLflow tracking server in the background (start, stop, status, logs).

    Example: zenml-mlflow server start --port 5001
    """


@server.command()
@data_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5001, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--backend-store-uri",
    help="Where runs are stored, e.g. postgresql://user:pass@db/mlflow for a team "
    "(default: SQLite in the data directory).",
)
@click.option(
    "--artifacts-destination",
    type=click.Path(file_okay=False, path_type=Path),
    help="Artifact folder (default: artifacts/ in the data directory).",
)
@click.option(
    "--basic-auth",
    is_flag=True,
    help=f"Start MLflow's basic-auth app; admin user {ADMIN_USERNAME!r}, password from "
    f"${ADMIN_PASSWORD_ENV} or generated into <data dir>/admin-password.",
)
@click.option(
    "--timeout",
    default=180.0,
    show_default=True,
    type=float,
    help="Seconds to wait for /health to answer.",
)
@jobs_option
@click.option("--foreground", is_flag=True, help="Run in the foreground (for containers) instead.")
@click.option(
    "--print-command", is_flag=True, help="Print the server command instead of running it."
)
def start(
    data_dir: Path,
    host: str,
    port: int,
    backend_store_uri: str | None,
    artifacts_destination: Path | None,
    basic_auth: bool,
    timeout: float,
    jobs: bool,
    foreground: bool,
    print_command: bool,
) -> None:
    """Start a local MLflow tracking server and wait until it answers.

    Example: zenml-mlflow server start --basic-auth --data-dir ~/mlflow
    """
    data = DataDir(data_dir)
    backend = backend_store_uri or f"sqlite:///{data.path / 'mlflow.db'}"
    artifacts = (artifacts_destination or data.path / "artifacts").expanduser().resolve()
    command = server_command(host, port, backend, artifacts, basic_auth)
    if print_command:
        click.echo(" ".join(command))
        return
    if basic_auth:
        require_auth_extra()
    data.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Two starts at once: the second waits here, then finds the first one running.
    with sqlite_store.locked(data.path / "server"):
        check_not_running(data)
        if host in WILDCARD_HOSTS:
            click.secho(
                f"warning: --host {host or '0.0.0.0'} makes the server reachable from every "
                "network of this machine"
                + ("" if basic_auth else ", without authentication (--basic-auth)"),
                err=True,
                fg="yellow",
            )
        check_port_free(host, port, "choose another --port.")
        prepare_sqlite_store(backend)
        launch(data, command, host, port, backend, artifacts, basic_auth, jobs, foreground, timeout)


def launch(
    data: DataDir,
    command: list[str],
    host: str,
    port: int,
    backend: str,
    artifacts: Path,
    basic_auth: bool,
    jobs: bool,
    foreground: bool,
    timeout: float,
) -> None:
    """Run the server in its own process group, record it, and wait until it answers."""
    env = {**server_environment(jobs), **(auth_environment(data) if basic_auth else {})}
    url = f"http://{'127.0.0.1' if host in WILDCARD_HOSTS else host}:{port}"

    def record(pid: int, group: int) -> ServerState:
        state = ServerState(
            pid=pid,
            created=psutil.Process(pid).create_time(),
            url=url,
            backend_store_uri=strip_credentials(backend),
            artifacts=str(artifacts),
            basic_auth=basic_auth,
            log=str(data.log),
            group=group,
        )
        data.write_state(state)
        return state

    if basic_auth:
        where = (
            f"${ADMIN_PASSWORD_ENV}" if os.environ.get(ADMIN_PASSWORD_ENV) else data.admin_password
        )
        click.echo(f"basic auth: admin user {ADMIN_USERNAME!r}, password in {where}")
    if foreground:
        record(os.getpid(), group=0)
        os.execve(command[0], command, env)
    with data.log.open("ab") as out:
        # Its own session: the server and every worker it spawns share a process group that
        # `stop` ends, even after the server process itself died.
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    state = record(process.pid, group=process.pid)
    try:
        wait_until_healthy(process, url, data.log, timeout)
    except click.ClickException:
        terminate(server_processes(state))
        data.clear_state()
        raise
    click.echo(f"MLflow server running at {url} (pid {process.pid}); log: {data.log}")


@server.command()
@data_dir_option
def stop(data_dir: Path) -> None:
    """Stop the server that `start` launched from this data directory, and only that one.

    Example: zenml-mlflow server stop
    """
    data = DataDir(data_dir)
    state = data.read_state()
    if state is None:
        click.echo(f"no MLflow server was started from {data.path}")
        return
    if not is_ours(state):
        data.clear_state()
        click.echo(
            f"removed a stale PID file: process {state.pid} is not the server started from "
            f"{data.path}; nothing was stopped"
        )
        return
    terminate(server_processes(state))
    data.clear_state()
    click.echo(f"stopped the MLflow server at {state.url} (pid {state.pid})")


@server.command()
@data_dir_option
@output_option
def status(data_dir: Path, output: str) -> None:
    """Tell whether the server runs and answers; exit code 1 if it does not.

    Example: zenml-mlflow server status --output json
    """
    data = DataDir(data_dir)
    state = data.read_state()
    running = state is not None and is_ours(state)
    healthy = running and state is not None and is_healthy(state.url)
    summary: dict[str, Any] = {
        "data_dir": str(data.path),
        "running": running,
        "healthy": healthy,
        "stale_pid_file": state is not None and not running,
        **(asdict(state) if state and running else {}),
    }
    if output == "json":
        print_json(summary)
    else:
        print_table(["key", "value"], [(key, str(value)) for key, value in summary.items()])
    if healthy:
        return
    if running:
        reason = "runs but does not answer /health: `zenml-mlflow server logs` shows why."
    elif data.log.exists():
        reason = "is not running: `zenml-mlflow server logs` shows how it ended."
    else:
        reason = "was never started: start it with `zenml-mlflow server start`."
    raise click.ClickException(f"the MLflow server of {data.path} {reason}")


@server.command()
@data_dir_option
@click.option("--lines", "-n", default=50, show_default=True, type=int, help="How many lines.")
def logs(data_dir: Path, lines: int) -> None:
    """Print the last lines of the server's log.

    Example: zenml-mlflow server logs -n 100
    """
    data = DataDir(data_dir)
    if not data.log.exists():
        raise click.ClickException(f"no server log in {data.path}: the server was never started.")
    click.echo(log_tail(data.log, lines), nl=False)


@server.command(name="add-user")
@data_dir_option
@click.argument("username")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="The user's password (asked for if not given).",
)
@click.option("--admin", is_flag=True, help="Make the user an admin, with every permission.")
def add_user(data_dir: Path, username: str, password: str, admin: bool) -> None:
    """Add a user to the running --basic-auth server of this data directory, as its admin.

    A user may read every experiment and write to those it creates (MLflow's default_permission
    READ); --admin gives every permission.

    Example: zenml-mlflow server add-user alice
    """
    import requests

    data = DataDir(data_dir)
    state = data.read_state()
    if state is None or not is_ours(state) or not state.basic_auth:
        raise click.ClickException(
            f"no --basic-auth server runs from {data.path}: start one with "
            "`zenml-mlflow server start --basic-auth`."
        )
    admin_auth = (
        ADMIN_USERNAME,
        os.environ.get(ADMIN_PASSWORD_ENV) or data.admin_password.read_text().strip(),
    )
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", CREATE_USER, {"username": username, "password": password})
    ]
    if admin:
        calls.append(("PATCH", UPDATE_USER_ADMIN, {"username": username, "is_admin": True}))
    for method, path, body in calls:
        response = requests.request(
            method, f"{state.url}{path}", json=body, auth=admin_auth, timeout=60
        )
        if not response.ok:
            raise click.ClickException(
                f"the server at {state.url} refused to add user {username!r} "
                f"(HTTP {response.status_code}): {_server_message(response)}"
            )
    click.echo(
        f"added user {username!r} to {state.url}"
        + (" as an admin" if admin else ": it may read every experiment and write to its own")
    )


def _server_message(response: "requests.Response") -> str:
    """Return the message of an MLflow error response, or its text."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text).strip()[:200]
