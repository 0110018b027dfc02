"""A stand-in of a Databricks workspace on 127.0.0.1 over TLS, for the Databricks scenarios.

It serves what MLflow's Databricks client and the Databricks SDK ask a workspace for: host
metadata and OIDC discovery, the OAuth M2M token exchange (`/oidc/v1/token`, client id and
secret in a Basic header; tokens expire after `token_seconds`), and MLflow's REST API, which it
proxies to a real `mlflow server` after checking the request's credentials: the PAT, the
username/password or an unexpired token it issued. Requests without them get HTTP 401.

Artifacts live in the workspace's storage, as on Databricks: experiments get a
`dbfs:/databricks/mlflow-tracking/...` location, MLflow's client asks for presigned upload
URLs (`/api/2.0/mlflow/artifacts/credentials-for-write`), and the stand-in keeps what is PUT
to them in `stored` (run id/path → bytes; LoggedModels' files by model id/path, their
location `.../logged_models/<id>/artifacts` as on Databricks). It lists them (a run's
`artifacts/list`, a LoggedModel's `artifacts/directories`) and serves a LoggedModel's files
through presigned download URLs (`credentials-for-download`).

Unity Catalog's model registry (`/api/2.0/mlflow/unity-catalog/...`) is the stand-in's own:
registered models and versions in memory, each version stored under `s3://<bucket>/models/...`
of an S3 server (moto) that MLflow's client writes to with temporary AWS credentials the
stand-in hands out; MLFLOW_S3_ENDPOINT_URL points the client at that server, as a workspace's
credentials point it at AWS.
"""

import base64
import itertools
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from testsupport.proxy import Proxy

STORAGE = "/storage/"
"""Where the presigned upload URLs point."""
LOGGED_MODELS = "/api/2.0/mlflow/logged-models/"
MODEL_UPLOADS = "/artifacts/credentials-for-upload"
MODEL_DOWNLOADS = "/artifacts/credentials-for-download"
MODEL_TRANSFERS = ("/artifacts/credentials-for-upload", "/artifacts/credentials-for-download")
MODEL_FOLDERS = "/artifacts/directories"
RUN_ARTIFACTS = "/api/2.0/mlflow/artifacts/list"
UC = "/api/2.0/mlflow/unity-catalog/"
UC_CREDENTIALS = {"access_key_id": "uc-key", "secret_access_key": "uc-secret",
                  "session_token": "uc-session"}  # fmt: skip
"""The temporary credentials a version's upload gets (moto takes any)."""


def basic(user: str, password: str) -> str:
    """Return the Authorization header of a user and password."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Workspace(Proxy):
    """A workspace that accepts one PAT, one user and one service principal."""

    def __init__(
        self,
        upstream: str,
        tls: tuple[Path, Path],
        *,
        pat: str,
        user: tuple[str, str],
        principal: tuple[str, str],
        workspace_id: str,
        token_seconds: float = 3600,
        first_token_seconds: float | None = None,
    ) -> None:
        super().__init__(upstream, tls=tls)
        self.pat, self.user, self.principal = pat, user, principal
        self.workspace_id = workspace_id
        self.token_seconds = token_seconds
        self.first_token_seconds = first_token_seconds
        """The first token's lifetime, shorter: a client must renew it once, soon."""
        self.issued: dict[str, float] = {}
        """Access token → when it expires (monotonic)."""
        self.used: Counter[str] = Counter()
        """Access token → requests it authenticated."""
        self.forms: list[dict[str, list[str]]] = []
        """The token requests' forms (grant type, scope), for the tests to check."""
        self.stored: dict[str, bytes] = {}
        """What was uploaded to the presigned URLs, by run id/path."""
        self.bucket: str | None = None
        """The S3 bucket Unity Catalog versions are stored in; set by the tests."""
        self.models: dict[str, list[dict[str, Any]]] = {}
        """Unity Catalog registered model name → its versions, in order."""
        self._serial = itertools.count(1)
        self._tokens = threading.Lock()

    def answer(
        self, method: str, path: str, headers: Any, body: bytes | None, query: dict[str, list[str]]
    ) -> Any:
        """Serve discovery, the token exchange and storage; leave MLflow's API to the proxy."""
        if path == "/.well-known/databricks-config":
            return 200, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": self.workspace_id}
        if path == "/oidc/.well-known/oauth-authorization-server":
            return 200, {
                "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                "token_endpoint": f"{self.url}/oidc/v1/token",
            }
        if path == "/oidc/v1/token":
            if headers.get("Authorization") != basic(*self.principal):
                return 401, {"error": "invalid_client"}
            with self._tokens:
                self.forms.append(parse_qs((body or b"").decode()))
                seconds = self.token_seconds
                if not self.issued and self.first_token_seconds is not None:
                    seconds = self.first_token_seconds
                token = f"m2m-{next(self._serial)}"
                self.issued[token] = time.monotonic() + seconds
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": seconds}
        if path == "/api/2.0/mlflow/artifacts/credentials-for-write":
            if not self.authorized(headers.get("Authorization")):
                return 401, {"error_code": "UNAUTHENTICATED"}
            request = json.loads(body or b"{}")
            run = request["run_id"]
            return 200, {
                "credential_infos": [
                    {
                        "run_id": run,
                        "path": path,
                        "type": "AWS_PRESIGNED_URL",
                        "signed_uri": f"{self.url}{STORAGE}{run}/{path}",
                    }  # fmt: skip
                    for path in request.get("path", [])
                ]
            }
        if path.startswith(UC):
            if not self.authorized(headers.get("Authorization")):
                return 401, {"error_code": "UNAUTHENTICATED"}
            request = {key: values[0] for key, values in query.items()}
            return self.unity_catalog(path.removeprefix(UC), request | json.loads(body or b"{}"))
        if path == RUN_ARTIFACTS:
            if not self.authorized(headers.get("Authorization")):
                return 401, {"error_code": "UNAUTHENTICATED"}
            run, folder = query["run_id"][0], query.get("path", [""])[0]
            return 200, {"files": self.listing(run, folder)}
        if path.startswith(LOGGED_MODELS) and path.endswith(MODEL_FOLDERS):
            if not self.authorized(headers.get("Authorization")):
                return 401, {"error_code": "UNAUTHENTICATED"}
            model = path.removeprefix(LOGGED_MODELS).removesuffix(MODEL_FOLDERS)
            folder = query.get("artifact_directory_path", [""])[0]
            return 200, {"files": self.listing(model, folder)}
        if path.startswith(LOGGED_MODELS) and path.endswith(MODEL_TRANSFERS):
            if not self.authorized(headers.get("Authorization")):
                return 401, {"error_code": "UNAUTHENTICATED"}
            model = path.removeprefix(LOGGED_MODELS)
            model = model.removesuffix(MODEL_UPLOADS).removesuffix(MODEL_DOWNLOADS)
            paths = json.loads(body or b"{}").get("paths", [])
            return 200, {
                "credentials": [
                    {
                        "model_id": model,
                        "credential_info": {
                            "path": path,
                            "type": "AWS_PRESIGNED_URL",
                            "signed_uri": f"{self.url}{STORAGE}{model}/{path}",
                        },
                    }  # fmt: skip
                    for path in paths
                ]
            }
        if method == "PUT" and path.startswith(STORAGE):  # presigned: no Authorization
            self.stored[path.removeprefix(STORAGE)] = body or b""
            return 200, {}
        if method == "GET" and path.startswith(STORAGE):
            stored = self.stored.get(path.removeprefix(STORAGE))
            return (404, {}) if stored is None else (200, stored)
        return None

    def listing(self, owner: str, folder: str) -> list[dict[str, Any]]:
        """Return the files and folders directly in `folder` of a run's or model's storage."""
        prefix = f"{owner}/{folder.strip('/')}/".replace("//", "/")
        entries: dict[str, dict[str, Any]] = {}
        for key, data in self.stored.items():
            if not key.startswith(prefix):
                continue
            head, _, rest = key.removeprefix(prefix).partition("/")
            relative = f"{prefix.removeprefix(owner + '/')}{head}"
            entries[head] = (
                {"path": relative, "is_dir": True} if rest
                else {"path": relative, "is_dir": False, "file_size": len(data)}
            )  # fmt: skip
        return list(entries.values())

    def unity_catalog(self, call: str, request: dict[str, Any]) -> Any:
        """Serve what MLflow's Unity Catalog client calls to register a model version."""
        if call.endswith(":is-databricks-sdk-models-artifact-repository-enabled"):
            return 200, {"is_databricks_sdk_models_artifact_repository_enabled": False}
        name = request.get("name", "")
        if call == "registered-models/create":
            if name in self.models:
                return 400, {"error_code": "RESOURCE_ALREADY_EXISTS", "message": name}
            self.models[name] = []
            return 200, {"registered_model": {"name": name}}
        versions = self.models.get(name)
        if versions is None:
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": name}
        if call == "registered-models/get":
            return 200, {"registered_model": {"name": name}}
        if call == "model-versions/create":
            number = str(len(versions) + 1)
            versions.append({
                **request, "version": number, "status": "PENDING_REGISTRATION",
                "storage_location": f"s3://{self.bucket}/models/{name}/{number}",
            })  # fmt: skip
            return 200, {"model_version": versions[-1]}
        version = versions[int(request.get("version", 0)) - 1]
        if call == "model-versions/generate-temporary-credentials":
            return 200, {"credentials": {"aws_temp_credentials": UC_CREDENTIALS}}
        if call == "model-versions/get":
            return 200, {"model_version": version}
        if call == "model-versions/finalize":
            version["status"] = "READY"
            return 200, {"model_version": version}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": call}

    def returned(self, path: str, data: bytes) -> bytes:
        """Give LoggedModels the location Databricks gives them (the server says `models/`)."""
        if not path.startswith(LOGGED_MODELS.rstrip("/")):
            return data
        return data.replace(b"/models/m-", b"/logged_models/m-")

    def forwarded(self, path: str, body: bytes | None) -> bytes | None:
        """Give new experiments a location in the workspace's storage, as Databricks does."""
        if path != "/api/2.0/mlflow/experiments/create":
            return body
        request = json.loads(body or b"{}")
        request.setdefault(
            "artifact_location", f"dbfs:/databricks/mlflow-tracking/{next(self._serial)}"
        )
        return json.dumps(request).encode()

    def authorized(self, authorization: str | None) -> bool:
        """Accept the PAT, the user's password and unexpired issued tokens; count each use."""
        if authorization in (f"Bearer {self.pat}", basic(*self.user)):
            return True
        token = (authorization or "").removeprefix("Bearer ")
        with self._tokens:
            if self.issued.get(token, 0) <= time.monotonic():
                return False
            self.used[token] += 1
        return True
