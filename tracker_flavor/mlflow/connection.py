"""The connection to one MLflow store: built once from the tracker's config and its secrets.

A `Connection` is immutable and holds all a client needs: the URI and its kind, credentials (as
secrets), TLS files, request limits, the Databricks host and the base of UI links. The MLflow
environment of steps (see environment.py), the watcher's REST client (see rest.py) and the
CLI's probes are all rendered from it, so nothing parses environment variables back.
"""

import base64
import dataclasses
import hashlib
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from mlflow import environment_variables as mlflow_env
from pydantic import SecretStr

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.config import secrets
from tracker_flavor.config.limits import RequestLimits
from tracker_flavor.config.uris import (
    DEFAULT_UI_URL,
    is_databricks_uri,
    is_http_uri,
    is_remote_uri,
    model_version_url,
    normalize_host,
    run_url,
    strip_credentials,
    uri_scheme,
    workspace_id_of,
)
from tracker_flavor.mlflow import internals
from tracker_flavor.mlflow.embedded import (
    embedded_artifact_location,
    embedded_tracking_uri,
    is_embedded_uri,
)

if TYPE_CHECKING:
    from databricks.sdk.config import Config as WorkspaceConfig
    from mlflow.utils.rest_utils import MlflowHostCreds

    from tracker_flavor.config.component import MLflowPlusConfig
    from tracker_flavor.mlflow.sqlite_store import LocalStores

Kind = Literal["http", "databricks", "database", "file"]

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# The Databricks SDK's variables (MLflow has no objects for them).
DATABRICKS_HOST = "DATABRICKS_HOST"
DATABRICKS_TOKEN = "DATABRICKS_TOKEN"
DATABRICKS_USERNAME = "DATABRICKS_USERNAME"
DATABRICKS_PASSWORD = "DATABRICKS_PASSWORD"
DATABRICKS_CLIENT_ID = "DATABRICKS_CLIENT_ID"
DATABRICKS_CLIENT_SECRET = "DATABRICKS_CLIENT_SECRET"
DATABRICKS_AUTH_TYPE = "DATABRICKS_AUTH_TYPE"

PROVIDER = "mlflow_plus"
"""The tracker's request-auth provider: its name in `MLFLOW_TRACKING_AUTH` and its
`mlflow.request_auth_provider` entry point (pyproject.toml, auth_provider.py)."""

INHERITED_RUN_VARIABLES = tuple(
    variable.name
    for variable in (
        mlflow_env.MLFLOW_RUN_ID,
        mlflow_env.MLFLOW_EXPERIMENT_ID,
        mlflow_env.MLFLOW_EXPERIMENT_NAME,
    )
)
"""Set by platforms (AzureML, ...) for their own run: never seen by a step."""

MANAGED_VARIABLES = (
    *(
        variable.name
        for variable in (
            mlflow_env.MLFLOW_TRACKING_URI,
            mlflow_env.MLFLOW_REGISTRY_URI,
            mlflow_env.MLFLOW_TRACKING_USERNAME,
            mlflow_env.MLFLOW_TRACKING_PASSWORD,
            mlflow_env.MLFLOW_TRACKING_TOKEN,
            mlflow_env.MLFLOW_TRACKING_AUTH,
            mlflow_env.MLFLOW_TRACKING_INSECURE_TLS,
            mlflow_env.MLFLOW_TRACKING_SERVER_CERT_PATH,
            mlflow_env.MLFLOW_TRACKING_CLIENT_CERT_PATH,
            mlflow_env.MLFLOW_HTTP_REQUEST_MAX_RETRIES,
            mlflow_env.MLFLOW_HTTP_REQUEST_TIMEOUT,
            mlflow_env.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR,
            mlflow_env.MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
            mlflow_env.MLFLOW_ENABLE_DB_SDK,
            mlflow_env.MLFLOW_ENABLE_ASYNC_LOGGING,
        )
    ),
    # Names, not MLflow's objects: releases before MLflow 3.1x lack these two.
    internals.SUPPRESS_URLS,
    internals.ALLOW_FILE_STORE,
    *INHERITED_RUN_VARIABLES,
    DATABRICKS_HOST,
    DATABRICKS_USERNAME,
    DATABRICKS_PASSWORD,
    DATABRICKS_TOKEN,
    DATABRICKS_CLIENT_ID,
    DATABRICKS_CLIENT_SECRET,
    DATABRICKS_AUTH_TYPE,
)
"""Every variable the tracker sets or clears while steps run, restored after them."""

TOKEN_SOURCES = 16
"""Service principals whose OAuth token sources one process keeps."""


class WorkspaceTokens:
    """OAuth M2M access tokens of Databricks service principals, fetched once per principal.

    The Databricks SDK's token source of each principal keeps its token and fetches a new one
    shortly before it expires (its own rule), so requests share one token instead of a token
    exchange each.
    """

    def __init__(self) -> None:
        self._sources: BoundedCache[tuple[str, str, str], WorkspaceConfig] = BoundedCache(
            TOKEN_SOURCES
        )

    def bearer(self, host: str, client_id: str, client_secret: str) -> str:
        """Return a valid access token of the service principal on the workspace at `host`."""
        key = (host, client_id, hashlib.sha256(client_secret.encode()).hexdigest())
        source = self._sources.get(key)
        if source is None:
            from databricks.sdk.config import Config

            source = Config(
                host=host, client_id=client_id, client_secret=client_secret, auth_type="oauth-m2m"
            )
            # Two threads may build one at once: both work, the cache keeps one.
            self._sources.put_new(key, source)
        return source.authenticate()["Authorization"].removeprefix("Bearer ")


@dataclass(frozen=True)
class Connection:
    """Where an MLflow store is and how to reach it; secrets never show in its repr."""

    uri: str
    artifact_location: str | None = None
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    databricks_host: str = ""
    databricks_client_id: str | None = None
    databricks_client_secret: SecretStr | None = None
    unity_catalog: bool = False
    insecure_tls: bool = False
    ca_bundle: str | None = None
    client_cert: str | None = None
    limits: RequestLimits = RequestLimits(10, 2)
    ui_url: str | None = None
    experiment_dir: str = "/Shared"
    workspace_id: str | None = None
    credentials_source: str | None = None
    """Where the credentials come from, for messages: "tracking_token from the ZenML secret
    'x'", "the user:password in MLFLOW_TRACKING_URI", ..."""
    tokens: WorkspaceTokens | None = dataclasses.field(default=None, compare=False, repr=False)
    """The process's OAuth token sources; without them, each request fetches a token."""

    @property
    def kind(self) -> Kind:
        """Return what the URI points at."""
        if is_databricks_uri(self.uri):
            return "databricks"
        if is_http_uri(self.uri):
            return "http"
        return "file" if uri_scheme(self.uri) == "file" else "database"

    @property
    def is_remote(self) -> bool:
        """Tell whether requests go over the network (a server or Databricks)."""
        return is_remote_uri(self.uri)

    @property
    def shown(self) -> str:
        """Return the URI as it may be shown: without credentials."""
        return strip_credentials(self.uri)

    @property
    def ui_base(self) -> str:
        """Return the base URL that run links start with."""
        if self.ui_url:
            return self.ui_url
        if self.kind == "databricks":
            return self.databricks_host
        if self.kind == "http":
            return strip_credentials(self.uri)
        return DEFAULT_UI_URL

    @property
    def server(self) -> str:
        """Return the server's base URL: the Databricks workspace, or the tracking URI."""
        return self.databricks_host if self.kind == "databricks" else self.uri

    @property
    def registry_uri(self) -> str:
        """Return the model registry's URI: Unity Catalog's or the workspace's on Databricks."""
        if self.kind != "databricks":
            return self.uri
        return "databricks-uc" if self.unity_catalog else "databricks"

    def link(self, experiment_id: str, run_id: str) -> str:
        """Return the UI deep link of a run."""
        return run_url(
            self.ui_base, experiment_id, run_id,
            databricks=self.kind == "databricks", workspace_id=self._workspace(),
        )  # fmt: skip

    def model_link(self, name: str, version: str) -> str:
        """Return the UI link of a registered model version (Unity Catalog's with it on)."""
        databricks = self.kind == "databricks"
        return model_version_url(
            self.ui_base, name, version, databricks=databricks,
            unity_catalog=databricks and self.unity_catalog, workspace_id=self._workspace(),
        )  # fmt: skip

    def _workspace(self) -> str | None:
        """Return the workspace id: configured, or the one the host's name carries."""
        return self.workspace_id or workspace_id_of(self.databricks_host)

    def experiment_name(self, name: str) -> str:
        """Return the experiment name as the store knows it; on Databricks, a workspace path."""
        if self.kind == "databricks" and not name.startswith("/"):
            return f"{self.experiment_dir.rstrip('/')}/{name}"
        return name

    def environment(self) -> dict[str, str]:
        """Return the MLflow environment variables: TLS, time limits, the store's kind.

        No credential is among them: MLflow asks the request-auth provider of a tracking server
        and the workspace-config provider of Databricks (credentials.py), which hold the
        credentials in memory. MLflow's Databricks SDK path is off: it reads only the
        environment.
        """
        env = mlflow_env
        variables = {
            **self.limits.variables(),
            # Else every set_terminated fetches the run again only to print its URL.
            internals.SUPPRESS_URLS: "true",
        }
        if self.kind == "databricks":
            variables[env.MLFLOW_REGISTRY_URI.name] = self.registry_uri
            variables[env.MLFLOW_ENABLE_DB_SDK.name] = "false"
        elif self.authorization():
            variables[env.MLFLOW_TRACKING_AUTH.name] = PROVIDER
        if self.kind == "file":
            # MLflow 3 refuses its file store unless asked for it; a file: URI is that request.
            variables[internals.ALLOW_FILE_STORE] = "true"
        if self.insecure_tls:
            variables[env.MLFLOW_TRACKING_INSECURE_TLS.name] = "true"
        if self.ca_bundle:
            variables[env.MLFLOW_TRACKING_SERVER_CERT_PATH.name] = self.ca_bundle
        if self.client_cert:
            variables[env.MLFLOW_TRACKING_CLIENT_CERT_PATH.name] = self.client_cert
        return variables

    def host_creds(self) -> "MlflowHostCreds":
        """Return the server address and credentials MLflow's REST client needs."""
        from mlflow.utils.rest_utils import MlflowHostCreds

        tls: dict[str, Any] = {
            "ignore_tls_verification": self.insecure_tls,
            "server_cert_path": self.ca_bundle,
            "client_cert_path": self.client_cert,
        }
        password = _reveal(self.password)
        if self.kind != "databricks":
            return MlflowHostCreds(  # type: ignore[no-untyped-call]
                self.uri,
                username=self.username,
                password=password,
                token=_reveal(self.token),
                **tls,
            )
        token = self.workspace_token()
        return MlflowHostCreds(  # type: ignore[no-untyped-call]
            self.databricks_host, username=self.username, password=password, token=token, **tls
        )

    def workspace_token(self) -> str | None:
        """Return the bearer token of a Databricks workspace: the PAT, or a service principal's."""
        if self.databricks_client_id and self.databricks_client_secret:
            tokens = self.tokens or WorkspaceTokens()
            return tokens.bearer(
                self.databricks_host,
                self.databricks_client_id,
                self.databricks_client_secret.get_secret_value(),
            )
        return _reveal(self.token)

    def authorization(self) -> str | None:
        """Return the Authorization header of a tracking server's requests, or None."""
        if self.kind == "databricks":
            return None
        if token := _reveal(self.token):
            return f"Bearer {token}"
        if self.username and self.password:
            pair = f"{self.username}:{self.password.get_secret_value()}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return None

    def request_options(self) -> dict[str, Any]:
        """Return the `requests` arguments that verify and authenticate like MLflow's client."""
        options: dict[str, Any] = {
            "verify": False if self.insecure_tls else (self.ca_bundle or True),
            "cert": self.client_cert,
        }
        if token := _reveal(self.token):
            options["headers"] = {"Authorization": f"Bearer {token}"}
        elif self.username and self.password:
            options["auth"] = (self.username, self.password.get_secret_value())
        return options


def unprotected(connection: Connection) -> dict[str, str]:
    """Return the warnings a connection deserves, by kind: plain http, unverified TLS."""
    warnings = {}
    parts = urlsplit(connection.uri)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        warnings["http"] = (
            f"MLflow tracking server {connection.shown} is reached over plain http: credentials "
            "and data travel unencrypted. Use https:// where the network is not trusted."
        )
    if connection.insecure_tls and connection.is_remote:
        warnings["tls"] = (
            f"TLS certificate verification of {connection.shown} is off "
            "(tracking_insecure_tls=True)."
        )
    return warnings


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _secret(value: Any) -> SecretStr | None:
    return SecretStr(str(value)) if value else None


def tracking_store(config: "MLflowPlusConfig", stores: "LocalStores") -> tuple[str, str | None]:
    """Return the tracking URI and, for the embedded store, the artifact root of experiments.

    The URI is the config's, else MLFLOW_TRACKING_URI, else the embedded store of the stack.
    """
    if configured := secrets.resolve(config, "tracking_uri"):
        return str(configured), None
    from zenml.client import Client

    path = Client().active_stack.artifact_store.path
    from_env = os.environ.get(mlflow_env.MLFLOW_TRACKING_URI.name)
    # mlflow.set_tracking_uri (configure_mlflow) exports the embedded store's URI too.
    if from_env and not is_embedded_uri(from_env, path):
        return from_env, None
    return embedded_tracking_uri(path, stores), embedded_artifact_location(path)


def credentials_source(config: "MLflowPlusConfig", fields: tuple[str, ...]) -> str:
    """Say where configured credentials come from: the tracker's config or a ZenML secret."""
    from zenml.utils.secret_utils import is_secret_reference, parse_secret_reference

    named = "/".join(fields)
    for field in fields:
        if is_secret_reference(raw := config.__dict__[field]):
            return f"{named} from the ZenML secret {parse_secret_reference(raw).name!r}"
    return f"{named} in the tracker's config"


def _configured_source(config: "MLflowPlusConfig") -> str | None:
    methods = config.authentication_methods()
    return credentials_source(config, tuple(methods[0].split("+"))) if methods else None


def connect(
    config: "MLflowPlusConfig",
    stores: "LocalStores",
    pinned: "str | Connection | None" = None,
    tokens: WorkspaceTokens | None = None,
) -> Connection:
    """Build the connection a config describes, resolving its secrets now (rotation counts).

    `pinned` is a tracking URI already resolved for this config, or a step's connection (for
    the watcher): its URI, and its URI's credentials if its credentials came from there.
    `tokens` are the process's OAuth token sources.
    """

    def value(field: str) -> Any:
        return secrets.resolve(config, field)

    artifact_location = None
    uri_credentials: tuple[str | None, SecretStr | None, str | None] = (None, None, None)
    if isinstance(pinned, Connection):
        uri = pinned.uri
        if pinned.credentials_source and pinned.credentials_source.startswith(URI_SOURCE):
            uri_credentials = (pinned.username, pinned.password, pinned.credentials_source)
    elif pinned is not None:
        uri = pinned
    else:
        uri, artifact_location = tracking_store(config, stores)
        if not secrets.resolve(config, "tracking_uri"):
            uri_credentials = _uri_credentials(uri, mlflow_env.MLFLOW_TRACKING_URI.name)
    if uri_credentials == (None, None, None):
        uri_credentials = _uri_credentials(uri, credentials_source(config, ("tracking_uri",)))
    uri = strip_credentials(uri)
    for field in ("tracking_ca_bundle", "tracking_client_cert"):
        if (path := value(field)) and not os.path.isfile(path):
            raise FileNotFoundError(
                f"{field} {path!r} is not a file on this machine: mount the PEM file "
                f"where steps run, or correct {field}."
            )
    source = _configured_source(config)
    username, password = value("tracking_username") or None, _secret(value("tracking_password"))
    if source is None and uri_credentials[0]:
        username, password, source = uri_credentials
    return Connection(
        uri=uri,
        artifact_location=artifact_location,
        token=_secret(value("tracking_token")),
        username=username,
        password=password,
        databricks_host=normalize_host(host) if (host := value("databricks_host")) else "",
        databricks_client_id=value("databricks_client_id") or None,
        databricks_client_secret=_secret(value("databricks_client_secret")),
        unity_catalog=config.enable_unity_catalog,
        insecure_tls=config.tracking_insecure_tls,
        ca_bundle=value("tracking_ca_bundle") or None,
        client_cert=value("tracking_client_cert") or None,
        limits=RequestLimits.of(config),
        ui_url=value("ui_url") or None,
        experiment_dir=config.databricks_experiment_dir,
        workspace_id=config.databricks_workspace_id,
        credentials_source=source,
        tokens=tokens,
    )


URI_SOURCE = "the user:password in "


def _uri_credentials(uri: str, where: str) -> tuple[str | None, SecretStr | None, str | None]:
    """Return the user, password and their source (`where` the URI is) from a URI's userinfo."""
    parts = urlsplit(uri)
    if not parts.username:
        return None, None, None
    password = _secret(unquote(parts.password or ""))
    source = URI_SOURCE + where.removesuffix(" in the tracker's config")
    return unquote(parts.username), password, source


def accepts_connections(url: str, seconds: float) -> bool:
    """Tell whether the server at `url` accepts a TCP connection within `seconds`."""
    parts = urlsplit(url)
    if not parts.hostname:
        return True  # not a network store: nothing can be down
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=seconds):
            return True
    except OSError:
        return False


def is_down(connection: Connection) -> bool:
    """Tell whether the connection's server is down: it does not accept a connection in time.

    A slow server is not a down one: MLflow's requests wait `read_timeout_seconds`, while this
    check gives the server `connect_timeout_seconds` to accept a TCP connection.
    """
    if connection.kind not in ("http", "databricks"):
        return False  # a database or file store fails in its own ways, never "down"
    return not accepts_connections(connection.server, connection.limits.connect_seconds)
