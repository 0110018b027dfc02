"""Databricks against a local stand-in of a workspace (TLS, OAuth M2M, MLflow's REST API)."""

import os

import pytest
from mlflow import MlflowClient
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL
from zenml.enums import StackComponentType
from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

from tests.integration.scenarios.conftest import environment_watch
from tests.integration.scenarios.pipelines import (
    UC_MODEL,
    credentials_in_memory,
    metrics_only,
    scenario,
    unity_catalog_model,
)
from tests.integration.scenarios.test_servers import child_environments, step_failure, thread_tags
from tests.integration.test_dynamic import wait_for_status
from tests.integration.test_run_model import runs_of
from testsupport.databricks import Workspace
from testsupport.tls import self_signed_certificate
from testsupport.topology import AWS_ENV, Moto
from tracker_flavor.runs import tags

pytestmark = pytest.mark.integration

PAT = "dapi-stand-in-pat"
USER = ("ci@example.com", "db-password-for-tests-only")
PRINCIPAL = ("sp-client-id", "sp-secret-for-tests-only")
WORKSPACE_ID = "1234567890123456"
UC_BUCKET = "unity-catalog"
FIRST_TOKEN_SECONDS = 40
"""The SDK renews a token 40 s before it expires, so the first is due when it arrives: it serves
one request and the next renews it, however fast the pipeline; later ones last an hour, as a
workspace's do."""


@pytest.fixture(scope="module")
def workspace(servers, session_dir):
    """The stand-in over the session's plain server; its CA trusted as a workspace's would be."""
    key, cert = self_signed_certificate(session_dir / "databricks-cert")
    with pytest.MonkeyPatch.context() as patch:
        # A real workspace's certificate is publicly trusted; requests trusts this one so.
        patch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        with Workspace(
            servers.plain.url, (key, cert), pat=PAT, user=USER, principal=PRINCIPAL,
            workspace_id=WORKSPACE_ID, first_token_seconds=FIRST_TOKEN_SECONDS,
        ) as stand_in:  # fmt: skip
            yield stand_in


@pytest.fixture(scope="module")
def catalog_storage(workspace, session_dir):
    """An S3 server (moto) on 127.0.0.1 where the stand-in's Unity Catalog keeps versions."""
    moto = Moto(session_dir / "unity-catalog").start(UC_BUCKET)
    workspace.bucket = UC_BUCKET
    try:
        with pytest.MonkeyPatch.context() as patch:
            # A workspace's temporary credentials are for AWS; MLflow's S3 client takes this
            # endpoint instead, as it does for any S3-compatible store.
            patch.setenv("MLFLOW_S3_ENDPOINT_URL", moto.url)
            yield moto
    finally:
        moto.stop()


def test_pat_and_password_reach_the_workspace_from_memory(servers, workspace, tracker_stack, capfd):
    host = workspace.url
    with environment_watch(PAT, USER[1]) as leaked:
        tracker_stack("plus_db_pat", tracking_uri="databricks", databricks_host=host,
                      tracking_token=PAT)  # fmt: skip
        by_token = Client().get_pipeline_run(scenario(points=2).id)
        tracker_stack("plus_db_user", tracking_uri="databricks", databricks_host=host,
                      tracking_username=USER[0], tracking_password=USER[1])  # fmt: skip
        by_password = Client().get_pipeline_run(metrics_only(points=2).id)
    assert leaked == set()
    assert workspace.rejected == 0
    client = MlflowClient(servers.plain.url)
    for run in (by_token, by_password):
        (parent,), _ = runs_of(client, run.id)
        assert len(client.get_metric_history(parent.info.run_id, "m")) == 2
    # The step's mlflow.log_artifact went to the workspace's storage through a presigned URL,
    # with no credential in the environment (MLflow 3's SDK repository fell back to REST).
    (parent,), _ = runs_of(client, by_token.id)
    assert parent.info.artifact_uri.startswith("dbfs:/databricks/mlflow-tracking/")
    run_id = parent.info.run_id
    assert workspace.stored[f"{run_id}/notes.txt"] == b"proxied artifact"
    # So did the output publisher's upload after the step, from the watcher's thread.
    assert f"{run_id}/zenml/log_things/output/data.json" in workspace.stored
    # ... without MLflow's warning that its SDK path found no credentials in the environment.
    assert "databricks SDK" not in capfd.readouterr().err


def test_m2m_nested_pipeline_under_the_experiment_dir_with_cached_renewed_tokens(
    servers, workspace, tracker_stack, caplog, capfd
):
    client = Client()
    client.create_secret("db_m2m", values={"id": PRINCIPAL[0], "secret": PRINCIPAL[1]})
    folder = "/Users/ci@example.com/zenml"
    issued_before = set(workspace.issued)
    try:
        tracker_stack(
            "plus_db_m2m", tracking_uri="databricks", databricks_host=workspace.url,
            databricks_client_id="{{db_m2m.id}}", databricks_client_secret="{{db_m2m.secret}}",
            databricks_experiment_dir=folder, databricks_workspace_id=WORKSPACE_ID, lineage=True,
        )  # fmt: skip
        with environment_watch(PRINCIPAL[1], "m2m-") as leaked:
            mapped = Client().get_pipeline_run(credentials_in_memory().id)
        mlflow = MlflowClient(servers.plain.url)
        experiment = mlflow.get_experiment_by_name(f"{folder}/credentials_in_memory")
        assert experiment is not None
        (parent,), children = runs_of(mlflow, mapped.id)
        assert parent.info.experiment_id == experiment.experiment_id
        # The step's own thread and MlflowClient() authenticated through the config provider.
        assert thread_tags(children) == ["0", "1", "2"]
        # The finalizer settled the parent, and the output publisher recorded the steps'
        # lineage, through the workspace with their own M2M tokens.
        assert wait_for_status(mlflow, parent.info.run_id, "FINISHED") == "FINISHED"
        assert workspace.requests["/api/2.0/mlflow/runs/log-inputs"] >= 3
        assert all(c.inputs.dataset_inputs for n, c in children.items() if "from_memory" in n)
        link = str(mapped.steps["items"].run_metadata[METADATA_EXPERIMENT_TRACKER_URL])
        assert link.startswith(f"{workspace.url}/ml/experiments/{experiment.experiment_id}/runs/")
        assert link.endswith(f"?o={WORKSPACE_ID}")
        # No secret and no token in the environment at any moment, nor in a child's.
        assert leaked == set()
        envs = "".join(child_environments(mapped))
        assert PRINCIPAL[1] not in envs and "m2m-" not in envs
        logs = "".join(capfd.readouterr()) + "\n".join(r.getMessage() for r in caplog.records)
        assert PRINCIPAL[1] not in logs and "m2m-" not in logs
        # Tokens are fetched with the client credentials grant, shared by many requests, and
        # renewed before they expire (the stand-in refuses expired ones: none was refused).
        tokens = set(workspace.issued) - issued_before
        assert workspace.forms[-1]["grant_type"] == ["client_credentials"]
        assert workspace.rejected == 0
        requests = sum(workspace.used[t] for t in tokens)
        assert len(tokens) in (2, 3) and requests > 20, (len(tokens), requests)

        # Unity Catalog: a two-level model name fails the step before it runs, naming the fix.
        tracker_stack(
            "plus_db_uc", tracking_uri="databricks", databricks_host=workspace.url,
            databricks_client_id="{{db_m2m.id}}", databricks_client_secret="{{db_m2m.secret}}",
            enable_unity_catalog=True,
        )  # fmt: skip
        with pytest.raises(RuntimeError):
            scenario.with_options(
                settings={"experiment_tracker": {"log_model": "output",
                                                  "registered_model_name": "ml.churn"}}
            )()  # fmt: skip
        failure = step_failure(caplog)
        assert "'ml.churn' is not a Unity Catalog name" in failure
        assert "<catalog>.<schema>.<model>" in failure
    finally:
        client.delete_secret("db_m2m")
    assert not [name for name in os.environ if name.startswith("DATABRICKS_")]


def test_unity_catalog_registers_a_version_through_the_catalogs_api_and_storage(
    servers, workspace, catalog_storage, tracker_stack, isolated_mlflow_environment, tmp_path
):
    import boto3
    import mlflow.pyfunc

    tracker_stack("plus_db_uc_models", tracking_uri="databricks", databricks_host=workspace.url,
                  tracking_token=PAT, enable_unity_catalog=True)  # fmt: skip
    run = Client().get_pipeline_run(unity_catalog_model().id)
    # Registered through the catalog's own API: created, files uploaded with the temporary
    # credentials to the storage location it gave, finalized; tagged with the ZenML ids.
    (version,) = workspace.models[UC_MODEL]
    assert version["status"] == "READY"
    (parent,), _ = runs_of(MlflowClient(servers.plain.url), run.id)
    assert version["run_id"] == parent.info.run_id
    # The source names the run's LoggedModel, whose files are in the workspace's storage too.
    model_id = version["source"].removeprefix("models:/")
    assert f"{model_id}/MLmodel" in workspace.stored
    version_tags = {tag["key"]: tag["value"] for tag in version["tags"]}
    assert version_tags[tags.STEP_RUN_ID] == str(run.steps["signed_model"].id)
    s3 = boto3.client(
        "s3", endpoint_url=catalog_storage.url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id="reader", aws_secret_access_key="reader",
    )  # fmt: skip
    prefix = f"models/{UC_MODEL}/1/"
    for item in s3.list_objects_v2(Bucket=UC_BUCKET, Prefix=prefix)["Contents"]:
        target = tmp_path / item["Key"].removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(UC_BUCKET, item["Key"], str(target))
    assert mlflow.pyfunc.load_model(str(tmp_path)).predict(["a", "b"]) == ["a", "b"]

    # The mlflow_plus model registry (ZenML's register_model_version, as its register step
    # calls it) registers the run's model in Unity Catalog too; the version loads back.
    client = Client()
    component = client.create_stack_component(
        "plus_uc_registry", "mlflow_plus", StackComponentType.MODEL_REGISTRY, {}
    )
    stack = client.active_stack_model.name
    client.update_stack(
        stack, component_updates={StackComponentType.MODEL_REGISTRY: [component.id]}
    )
    try:
        registry = Client().active_stack.model_registry
        second = registry.register_model_version(
            UC_MODEL, model_source_uri=f"runs:/{parent.info.run_id}/model",
            metadata=ModelRegistryModelMetadata(zenml_step_name="signed_model"),
        )  # fmt: skip
        assert second.version == "2"
        # MLflow's client took the files from the run's LoggedModel in the workspace's
        # storage (listing, read credentials, presigned GETs) and uploaded them to the catalog.
        assert workspace.models[UC_MODEL][1]["status"] == "READY"
        assert workspace.models[UC_MODEL][1]["source"] == version["source"]
        assert second.metadata.zenml_step_name == "signed_model"
        assert registry.load_model_version(UC_MODEL, "2").predict(["c"]) == ["c"]
    finally:
        client.update_stack(stack, component_updates={StackComponentType.MODEL_REGISTRY: []})
        client.delete_stack_component(component.id, StackComponentType.MODEL_REGISTRY)
