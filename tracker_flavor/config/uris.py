"""Tracking URI helpers: validation, credential stripping and run deep links."""

import os
import re
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

DATABRICKS_URI = "databricks"
DEFAULT_UI_URL = "http://127.0.0.1:5000"
# MLflow 3's UI opens an experiment in its GenAI view (traces, judges) unless the route asks for
# the model-training one; MLflow 2's UI has a single view and ignores the parameter.
CLASSIC_VIEW_QUERY = "workflowType=machine_learning"

# Database schemes MLflow's SQLAlchemy store accepts (mlflow.store.db.db_types), spelled out
# here so that validating a config does not import MLflow.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
HTTP_SCHEMES = ("http", "https")
VALID_SCHEMES = (*DATABASE_SCHEMES, *HTTP_SCHEMES, "file")


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
"""RFC 3986's scheme: Python 3.10's urlsplit also takes the host of `127.0.0.1:5000` for one."""


def uri_scheme(uri: str) -> str:
    """Return the URI's scheme without a SQLAlchemy driver suffix (`postgresql+psycopg2` -> ...)."""
    scheme = urlsplit(uri).scheme
    return scheme.split("+", 1)[0].lower() if _SCHEME.fullmatch(scheme) else ""


def is_databricks_uri(uri: str | None) -> bool:
    """Tell whether the tracking URI targets a Databricks workspace."""
    return uri is not None and (uri == DATABRICKS_URI or uri.startswith("databricks://"))


def is_http_uri(uri: str | None) -> bool:
    """Tell whether the tracking URI is an MLflow tracking server reached over HTTP(S)."""
    return uri is not None and uri_scheme(uri) in HTTP_SCHEMES


def is_remote_uri(uri: str | None) -> bool:
    """Tell whether the tracking URI is a server (HTTP or Databricks) rather than a local store."""
    return is_http_uri(uri) or is_databricks_uri(uri)


def check_tracking_uri(uri: str) -> None:
    """Raise ValueError, naming the field and the fix, if MLflow cannot use `uri`."""
    if is_databricks_uri(uri):
        return
    scheme = uri_scheme(uri)
    shown = strip_credentials(uri)
    if scheme not in VALID_SCHEMES:
        raise ValueError(
            f"tracking_uri {shown!r} has "
            + (f"the unknown scheme {scheme!r}" if scheme else "no scheme")
            + ": use http(s)://HOST:PORT for a tracking server, 'databricks' for Databricks, "
            "or sqlite:///, postgresql://, mysql://, file:/// for a store, or leave it unset "
            "for the embedded store."
        )
    parts = urlsplit(uri)
    _check_credentials(parts, scheme, shown)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        port = parts.netloc.rsplit(":", 1)[-1]
        raise ValueError(
            f"tracking_uri {shown!r} has the port {port!r}, which is not a port number "
            "(1-65535): correct the port."
        ) from None
    if scheme in HTTP_SCHEMES and not parts.hostname:
        raise ValueError(f"tracking_uri {shown!r} has no host: use http(s)://HOST:PORT.")
    if scheme == "sqlite":
        _check_sqlite_directory(parts, shown)


def _check_credentials(parts: SplitResult, scheme: str, shown: str) -> None:
    """Refuse credentials written into the URI, where `describe` and error messages show them."""
    if scheme in HTTP_SCHEMES and (parts.username or parts.password):
        raise ValueError(
            f"tracking_uri {shown!r} carries credentials (user:password@): remove them from "
            "the URI, store them in a ZenML secret (`zenml secret create mlflow "
            "--username=... --password=...`) and set tracking_username='{{mlflow.username}}' "
            "and tracking_password='{{mlflow.password}}'."
        )
    if parts.password:
        raise ValueError(
            f"tracking_uri {shown!r} carries a password (user:password@): store the whole URI "
            "in a ZenML secret (`zenml secret create mlflow_db --uri=...`) and set "
            "tracking_uri='{{mlflow_db.uri}}'."
        )


def _check_sqlite_directory(parts: SplitResult, shown: str) -> None:
    """Refuse a SQLite file in a directory that does not exist (MLflow would create it)."""
    path = parts.path[1:]  # sqlite:///relative.db, sqlite:////absolute.db
    directory = os.path.dirname(path)
    if path and path != ":memory:" and directory and not os.path.isdir(directory):
        raise ValueError(
            f"tracking_uri {shown!r} names a SQLite file in {directory}, which does not exist "
            "on this machine: create the directory, or correct the path (an absolute path "
            "takes four slashes: sqlite:////path/to/mlflow.db)."
        )


def strip_credentials(uri: str) -> str:
    """Return the URI with any `user:password@` removed."""
    parts = urlsplit(uri)
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_credentials(text: str) -> str:
    """Return `text` with the `user:password@` of every URI in it removed (for messages)."""
    return _USERINFO.sub("", text)


def normalize_host(host: str) -> str:
    """Return a workspace host with a scheme and without a trailing slash."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"https://{host}"
    return host


_AZURE_WORKSPACE = re.compile(r"^adb-(\d+)\.\d+\.azuredatabricks\.net$")


def workspace_id_of(host: str) -> str | None:
    """Return the workspace id an Azure workspace URL carries (adb-<id>.<n>...), else None."""
    match = _AZURE_WORKSPACE.match(urlsplit(normalize_host(host)).hostname or "")
    return match.group(1) if match else None


def run_url(
    base_url: str,
    experiment_id: str,
    run_id: str,
    *,
    databricks: bool = False,
    workspace_id: str | None = None,
) -> str:
    """Return the UI deep link of a run: the OSS `#/` route (model-training view) or Databricks'.

    A Databricks link names its workspace (`?o=`) when the id is known: a browser signed in to
    several workspaces of one account host then opens the right one.
    """
    base = base_url.rstrip("/")
    if databricks:
        query = f"?o={workspace_id}" if workspace_id else ""
        return f"{base}/ml/experiments/{experiment_id}/runs/{run_id}{query}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{CLASSIC_VIEW_QUERY}"


def model_version_url(
    base_url: str,
    name: str,
    version: str,
    *,
    databricks: bool = False,
    unity_catalog: bool = False,
    workspace_id: str | None = None,
) -> str:
    """Return the UI link of a registered model version: OSS, workspace registry or Unity Catalog.

    Unity Catalog's versions open in Catalog Explorer, one path segment per level of the
    three-level name; Databricks links name their workspace (`?o=`) when the id is known.
    """
    base = base_url.rstrip("/")
    if not databricks:
        return f"{base}/#/models/{quote(name, safe='')}/versions/{version}"
    query = f"?o={workspace_id}" if workspace_id else ""
    if unity_catalog:
        path = "/".join(quote(level, safe="") for level in name.split("."))
        return f"{base}/explore/data/models/{path}/version/{version}{query}"
    return f"{base}/ml/models/{quote(name, safe='')}/versions/{version}{query}"
