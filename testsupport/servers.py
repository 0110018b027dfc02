"""Start real `mlflow server` processes on 127.0.0.1 (the CLI's launcher), wait for /health."""

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tracker_flavor.cli.server import serves_with_gunicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    seconds: float = 300,
    path: str = "/health",
) -> None:
    """Poll `url` + `path` until it answers 200; fail with the server's log if it does not.

    A self-signed HTTPS server is polled without verifying its certificate.
    """
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{url} did not become healthy in {seconds}s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started in its own session, with every worker it spawned."""
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (SQLite or PostgreSQL backend, proxied artifacts)."""

    def __init__(
        self,
        workdir: Path,
        *,
        backend_store_uri: str | None = None,
        basic_auth: bool = False,
        env: dict[str, str] | None = None,
        ssl: tuple[Path, Path] | None = None,
        artifacts_destination: str | None = None,
    ) -> None:
        from tracker_flavor.cli.server import server_command, server_environment

        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        scheme = "https" if ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self.backend_store_uri = backend_store_uri or f"sqlite:///{workdir}/mlflow.db"
        # The launcher of `zenml-mlflow server start` and `zenml-mlflow ui`.
        command = server_command(
            "127.0.0.1",
            self.port,
            self.backend_store_uri,
            None if artifacts_destination else workdir / "artifacts",
            basic_auth=basic_auth,
        )
        if ssl and serves_with_gunicorn():  # MLflow 2: TLS options join the gunicorn ones
            command[-1] += f" --keyfile {ssl[0]} --certfile {ssl[1]}"
        elif ssl:
            command += ["--uvicorn-opts", f"--ssl-keyfile {ssl[0]} --ssl-certfile {ssl[1]}"]
        if artifacts_destination:  # an object store URI, e.g. s3://bucket
            command += ["--artifacts-destination", artifacts_destination]
        self._command = command
        # No background job runners (GenAI evaluation jobs): they only add load to the tests.
        self._env = {**server_environment(jobs=False), **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> "MlflowServer":
        """Start the server process without waiting for it."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self._command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        return self

    def wait(self) -> "MlflowServer":
        """Wait until /health answers."""
        assert self.process is not None
        wait_for_health(self.url, self.process, self.log)
        return self

    def start(self) -> "MlflowServer":
        """Start the server and wait until /health answers."""
        return self.launch().wait()

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None:
            stop(self.process)
