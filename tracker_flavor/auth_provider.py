"""MLflow's request-auth provider `mlflow_plus`: each request gets its connection's credentials.

MLflow finds it by its entry point (`mlflow.request_auth_provider`, pyproject.toml; the runtime
registers it where the entry point is not installed) and uses it for the requests of its HTTP
client while `MLFLOW_TRACKING_AUTH=mlflow_plus`, which the tracker sets while steps run. The
credentials come from the memory of the installed runtime (mlflow/credentials.py); a process
with no runtime installed (a step's child process) holds none.
"""

from collections.abc import Callable
from typing import Any, ClassVar

from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

from tracker_flavor.mlflow.connection import PROVIDER
from tracker_flavor.mlflow.credentials import RequestAuth, ServerCredentials


class ConnectionAuthProvider(RequestAuthProvider):
    """Authenticates a request with the credentials of the running steps' connection to it."""

    held: ClassVar[Callable[[], ServerCredentials] | None] = None
    """Where the installed runtime holds its connections (set by `Runtime.install`)."""

    def get_name(self) -> str:
        """Return the name `MLFLOW_TRACKING_AUTH` selects it by."""
        return PROVIDER

    def get_auth(self) -> RequestAuth:
        """Return the auth callable of one request: the connections held now decide."""
        held = ConnectionAuthProvider.held  # not through self: it is no method
        credentials = held() if held is not None else ServerCredentials()
        fallback: Any = None
        if credentials.fallback:
            from mlflow.tracking.request_auth.registry import fetch_auth

            fallback = fetch_auth(credentials.fallback)  # type: ignore[no-untyped-call]
        return RequestAuth(credentials, fallback)
