"""A throw-away PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package)."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from testsupport.servers import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise RuntimeError(f"PostgreSQL's {name} is missing: apt-get install postgresql")
    return found[-1]


class Postgres:
    """initdb + pg_ctl in a temporary directory; as root, the server runs as user `postgres`."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="zenml-mlflow-pg-"))
        self.port = free_port()
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> "Postgres":
        """Create a cluster, start it and create the `mlflow` database."""
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        data, log = self.directory / "data", self.directory / "server.log"
        self._run(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -c max_connections=200"
        self._run(_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        self._run(
            _bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow"
        )
        return self

    def stop(self) -> None:
        """Stop the server and remove its files."""
        self._run(_bin("pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
