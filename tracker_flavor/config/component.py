"""Stack component configuration of the `mlflow_plus` experiment tracker."""

from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator
from zenml.experiment_trackers.base_experiment_tracker import BaseExperimentTrackerConfig
from zenml.utils.secret_utils import SecretField, is_secret_reference

from tracker_flavor.config.settings import MLflowPlusSettings
from tracker_flavor.config.uris import (
    check_tracking_uri,
    is_databricks_uri,
    is_remote_uri,
    normalize_host,
)

DATABRICKS_ONLY_FIELDS = (
    "databricks_host",
    "databricks_client_id",
    "databricks_client_secret",
    "enable_unity_catalog",
    "databricks_workspace_id",
)


class MLflowPlusConfig(BaseExperimentTrackerConfig, MLflowPlusSettings):
    """Where the MLflow store is and how to authenticate to it.

    Every key of ZenML's built-in `mlflow` flavor is accepted with the same meaning. Credentials
    are secret fields: give them as `{{secret_name.key}}` references.
    """

    # Unknown keys are rejected by ZenML when registering; stored configs stay loadable.
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI: http(s)://HOST:PORT, 'databricks', or a database/file "
        "store. Unset: MLFLOW_TRACKING_URI of the step's process, else the embedded SQLite store "
        "inside the local artifact store.",
    )
    tracking_username: str | None = SecretField(
        None, description="Username for a tracking server with basic auth (with tracking_password)."
    )
    tracking_password: str | None = SecretField(
        None, description="Password for a tracking server with basic auth (with tracking_username)."
    )
    tracking_token: str | None = SecretField(
        None, description="Bearer token for the tracking server, or a Databricks personal token."
    )
    tracking_insecure_tls: bool = Field(
        False, description="Skip TLS certificate verification of the tracking server."
    )
    databricks_host: str | None = Field(
        None,
        description="Databricks workspace URL; required when tracking_uri is 'databricks'.",
    )
    databricks_client_id: str | None = SecretField(
        None, description="Databricks service principal id for OAuth M2M."
    )
    databricks_client_secret: str | None = SecretField(
        None, description="Databricks service principal secret for OAuth M2M."
    )
    enable_unity_catalog: bool = Field(
        False, description="Register models in Databricks Unity Catalog (registry 'databricks-uc')."
    )
    databricks_workspace_id: str | None = Field(
        None,
        description="Databricks workspace id (the `o=` of workspace URLs); step links carry it. "
        "Default: the id an Azure workspace URL (adb-<id>.<n>.azuredatabricks.net) carries.",
    )
    tracking_ca_bundle: str | None = Field(
        None,
        description="Path to a CA bundle (PEM) to verify the tracking server's certificate with, "
        "for servers whose certificate a private CA signed (MLFLOW_TRACKING_SERVER_CERT_PATH).",
    )
    tracking_client_cert: str | None = Field(
        None,
        description="Path to a client certificate (PEM, with its key) for servers that require "
        "mutual TLS (MLFLOW_TRACKING_CLIENT_CERT_PATH).",
    )
    connect_timeout_seconds: int = Field(
        10,
        ge=1,
        description="Seconds the tracking server has to accept a connection; one that does not "
        "is down (an outage: see on_tracking_outage).",
    )
    read_timeout_seconds: int = Field(
        120,
        ge=1,
        description="Seconds each attempt of a request waits for the server's answer: a slow "
        "server is not an outage. A server that never answers fails a request after "
        "(max_retries + 1) x this + backoff.",
    )
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a failed request (connection errors, HTTP 429/5xx) before the "
        "step fails; MLflow's own default of 7 retries takes about four minutes.",
    )
    databricks_experiment_dir: str = Field(
        "/Shared",
        description="Workspace folder for experiment names that are not already workspace paths "
        "(`/Users/...`, `/Shared/...`), on Databricks.",
    )
    ui_url: str | None = Field(
        None,
        description="Base URL of the MLflow UI when it differs from the API URL; step links "
        "start with it. Default: the tracking server itself, or http://127.0.0.1:5000 (the "
        "`zenml-mlflow ui` page) for a local store.",
    )

    @field_validator("databricks_experiment_dir")
    @classmethod
    def _absolute_dir(cls, value: str) -> str:
        """Require a workspace folder path."""
        if not value.startswith("/"):
            raise ValueError(
                f"databricks_experiment_dir {value!r} must be a workspace path such as /Shared "
                "or /Users/you@example.com."
            )
        return value.rstrip("/") or "/"

    @field_validator("databricks_workspace_id")
    @classmethod
    def _numeric_workspace_id(cls, value: str | None) -> str | None:
        """Require the workspace's number, as `?o=` takes it."""
        if value is not None and not value.strip().isdigit():
            raise ValueError(
                f"databricks_workspace_id {value!r} is not a workspace id: give the number "
                "after ?o= in your workspace's URLs, e.g. 1234567890123456."
            )
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _check_consistency(self) -> "MLflowPlusConfig":
        """Reject contradictory or incomplete options, naming the field and the fix."""
        raw = self.__dict__  # raw values: secret references stay unresolved here
        uri = raw["tracking_uri"]
        if uri is not None and not is_secret_reference(uri):
            check_tracking_uri(uri)
        if bool(raw["tracking_username"]) != bool(raw["tracking_password"]):
            missing = "tracking_password" if raw["tracking_username"] else "tracking_username"
            raise ValueError(
                f"{missing} is missing: username/password authentication needs both "
                "tracking_username and tracking_password."
            )
        if bool(raw["databricks_client_id"]) != bool(raw["databricks_client_secret"]):
            missing = (
                "databricks_client_secret"
                if raw["databricks_client_id"]
                else "databricks_client_id"
            )
            raise ValueError(
                f"{missing} is missing: Databricks OAuth M2M needs both databricks_client_id "
                "and databricks_client_secret."
            )
        databricks = uri is not None and is_databricks_uri(uri)
        stray = [key for key in DATABRICKS_ONLY_FIELDS if raw[key]]
        if stray and not databricks:
            raise ValueError(
                f"{', '.join(stray)} {'apply' if len(stray) > 1 else 'applies'} only to "
                "Databricks: "
                "set tracking_uri=databricks, "
                "or remove them."
            )
        if databricks and not raw["databricks_host"]:
            raise ValueError(
                "databricks_host is missing: tracking_uri=databricks needs the workspace URL, "
                "e.g. --databricks_host=https://adb-123.azuredatabricks.net"
            )
        if raw["tracking_insecure_tls"] and raw["tracking_ca_bundle"]:
            raise ValueError(
                "tracking_insecure_tls and tracking_ca_bundle contradict each other: keep "
                "tracking_ca_bundle to verify the server with your CA, or drop it to skip checks."
            )
        host = raw["databricks_host"]
        if host and not is_secret_reference(host) and not urlsplit(normalize_host(host)).hostname:
            raise ValueError(
                f"databricks_host {host!r} is not a workspace URL: use e.g. "
                "https://adb-123.azuredatabricks.net"
            )
        if raw["enable_unity_catalog"]:
            self.check_unity_catalog_name()
        methods = self.authentication_methods()
        if len(methods) > 1:
            raise ValueError(
                f"several authentication methods are configured ({', '.join(methods)}): "
                "keep exactly one of tracking_token, tracking_username+tracking_password"
                + (", databricks_client_id+databricks_client_secret" if databricks else "")
                + "."
            )
        if databricks and not methods:
            raise ValueError(
                "Databricks needs credentials: set tracking_token (a personal access token), "
                "tracking_username+tracking_password, or "
                "databricks_client_id+databricks_client_secret."
            )
        return self

    def authentication_methods(self) -> list[str]:
        """Return the configured authentication methods, without resolving secrets."""
        raw: dict[str, Any] = self.__dict__
        methods = []
        if raw["tracking_token"]:
            methods.append("tracking_token")
        if raw["tracking_username"] and raw["tracking_password"]:
            methods.append("tracking_username+tracking_password")
        if raw["databricks_client_id"] and raw["databricks_client_secret"]:
            methods.append("databricks_client_id+databricks_client_secret")
        return methods

    @property
    def is_local(self) -> bool:
        """Tell ZenML whether the tracker relies on local resources (the embedded store)."""
        uri = self.__dict__["tracking_uri"]
        return not uri or not is_remote_uri(uri)

    def settings_values(self) -> dict[str, Any]:
        """Return the settings fields explicitly set on the component (component-level defaults)."""
        return self.model_dump(include=set(MLflowPlusSettings.model_fields), exclude_unset=True)
