"""Which credentials a request to an MLflow server carries, from connections held in memory.

MLflow reads credentials from `os.environ`, which every child process inherits. Instead, while
steps run, `MLFLOW_TRACKING_AUTH` names the tracker's request-auth provider (a name, no secret);
MLflow then hands each request of its HTTP client to the provider, which looks its connection up
here:

- by the request's URL: the connection whose server URL is the longest prefix of it, so a
  request to any other server gets none of these credentials;
- among connections to one server with different credentials (two trackers' steps at once):
  the one the current thread entered last, else the one any thread entered last (a thread the
  step's code started, MLflow's own background threads).

A request that matches no connection goes to the provider `MLFLOW_TRACKING_AUTH` named before
the steps, if any. A child process finds no connection here, so its requests carry none.

Databricks' requests do not go through request-auth providers: MLflow asks a workspace-config
provider for the host and credentials instead, which answers from the same connections.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tracker_flavor.config.uris import strip_credentials
from tracker_flavor.mlflow.connection import Connection

if TYPE_CHECKING:
    from tracker_flavor.mlflow.internals import Internals

DATABRICKS = "databricks"
"""The tracking URI of the workspace whose credentials MLflow asks the config provider for."""


def server_base(url: str) -> str:
    """Return the URL a connection's requests start with: no credentials, no trailing slash."""
    return strip_credentials(url).rstrip("/")


def matches(base: str, url: str) -> bool:
    """Tell whether a request to `url` goes to the server at `base`."""
    return url == base or url.startswith(base + "/") or url.startswith(base + "?")


class ServerCredentials:
    """The connections of the process's running steps, reference counted, by server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[list[Any]] = []
        """[connection, count], the last entered last."""
        self._thread = threading.local()
        self._configured: dict[str, Connection] = {}
        """What `configure` holds, by server: one connection each, the latest."""
        self.fallback: str | None = None
        """The provider MLFLOW_TRACKING_AUTH named before the steps, for other servers."""

    def enter(self, connection: Connection) -> None:
        """Hold the connection's credentials for its server until the matching `leave`."""
        self._hold(connection)
        self._stack().append(connection)

    def leave(self, connection: Connection) -> None:
        """Undo one `enter` of the connection."""
        self._release(connection)
        stack = self._stack()
        if connection in stack:
            del stack[len(stack) - 1 - stack[::-1].index(connection)]

    @contextmanager
    def holding(self, connection: Connection) -> Iterator[None]:
        """Hold the connection's credentials while the block runs (work after its step)."""
        self.enter(connection)
        try:
            yield
        finally:
            self.leave(connection)

    def _hold(self, connection: Connection) -> None:
        with self._lock:
            for held in self._held:
                if held[0] == connection:
                    self._held.remove(held)
                    held[1] += 1
                    self._held.append(held)
                    break
            else:
                self._held.append([connection, 1])

    def _release(self, connection: Connection) -> None:
        with self._lock:
            for held in self._held:
                if held[0] == connection:
                    held[1] -= 1
                    if not held[1]:
                        self._held.remove(held)
                    break

    def configure(self, connection: Connection) -> None:
        """Hold the connection for the rest of the process, instead of the one configured before."""
        base = server_base(connection.uri)
        with self._lock:
            previous = self._configured.get(base)
            self._configured[base] = connection
        if previous is not None:
            self._release(previous)
        self._hold(connection)

    def find(self, url: str) -> "Connection | None":
        """Return the connection a request to `url` authenticates with, or None."""
        with self._lock:
            candidates: list[Connection] = [
                held[0] for held in self._held if matches(server_base(held[0].uri), url)
            ]
        if not candidates:
            return None
        longest = max(len(server_base(c.uri)) for c in candidates)
        candidates = [c for c in candidates if len(server_base(c.uri)) == longest]
        for mine in reversed(self._stack()):
            if mine in candidates:
                return mine
        return candidates[-1]

    def _stack(self) -> list[Connection]:
        if not hasattr(self._thread, "stack"):
            self._thread.stack = []
        return self._thread.stack  # type: ignore[no-any-return]


class RequestAuth:
    """A `requests` auth callable: the request's connection's credentials, replacing any."""

    def __init__(self, credentials: ServerCredentials, fallback: Any = None) -> None:
        self._credentials = credentials
        self._fallback = fallback

    def __call__(self, request: Any) -> Any:
        """Set the Authorization header of a request to a held connection's server."""
        connection = self._credentials.find(request.url)
        if connection is None:
            return self._fallback(request) if self._fallback is not None else request
        if header := connection.authorization():
            request.headers["Authorization"] = header
        return request


class WorkspaceConfigProvider:
    """MLflow's Databricks config provider: the running steps' workspace and its credentials.

    MLflow asks it (after the DATABRICKS_* variables, which are cleared while steps run) for the
    host and credentials of each request to a `databricks` tracking URI, its registry and its
    artifact repositories. Without a held Databricks connection, the provider that was in its
    place answers.
    """

    def __init__(self, credentials: ServerCredentials, seam: "Internals", previous: Any) -> None:
        self._credentials = credentials
        self._seam = seam
        self.previous = previous

    def held(self) -> Connection | None:
        """Return the Databricks connection of the running steps, or None."""
        connection = self._credentials.find(DATABRICKS)
        return connection if connection is not None and connection.kind == "databricks" else None

    def get_config(self) -> Any:
        """Return MLflow's legacy config object of the held workspace, or the previous answer."""
        connection = self.held()
        if connection is None:
            return self.previous.get_config() if self.previous is not None else None
        password = connection.password
        return self._seam.databricks_config(
            host=connection.databricks_host,
            username=connection.username,
            password=password.get_secret_value() if password is not None else None,
            token=connection.workspace_token(),
            insecure=connection.insecure_tls,
        )
