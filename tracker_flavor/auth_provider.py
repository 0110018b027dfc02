"""MLflow's request-auth provider `mlflow_plus`: each request gets its connection's credentials.

MLflow finds it by its entry point (`mlflow.request_auth_provider`, pyproject.toml) and uses it
for the requests of its HTTP client while `MLFLOW_TRACKING_AUTH=mlflow_plus`, which the tracker
sets while steps run; the credentials come from the runtime's memory (mlflow/credentials.py).
"""

from typing import Any

from mlflow.tracking.request_auth.abstract_request_auth_provider import RequestAuthProvider

from tracker_flavor.mlflow.connection import PROVIDER
from tracker_flavor.mlflow.credentials import RequestAuth


class ConnectionAuthProvider(RequestAuthProvider):
    """Authenticates a request with the credentials of the running steps' connection to it."""

    def get_name(self) -> str:
        """Return the name `MLFLOW_TRACKING_AUTH` selects it by."""
        return PROVIDER

    def get_auth(self) -> RequestAuth:
        """Return the auth callable of one request: the connections held now decide."""
        from tracker_flavor.runtime import runtime

        credentials = runtime.mlflow.credentials
        fallback: Any = None
        if credentials.fallback:
            from mlflow.tracking.request_auth.registry import fetch_auth

            fallback = fetch_auth(credentials.fallback)  # type: ignore[no-untyped-call]
        return RequestAuth(credentials, fallback)
