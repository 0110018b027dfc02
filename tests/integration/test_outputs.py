"""Outputs, reports, lineage, models and system metrics in MLflow, for real."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow import MlflowClient
from zenml.client import Client
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tests.integration.outputs_pipelines import REGISTERED_MODEL, guarded_pipeline, outputs_pipeline
from tests.integration.test_performance import active_stack
from testsupport.benchmark_pipelines import LINEAR_STEPS, bench_linear
from testsupport.probe import WATCHER_THREAD, Probe, wait_for_watcher
from testsupport.proxy import Proxy
from testsupport.servers import MlflowServer
from tracker_flavor.mlflow.internals import has_logged_models
from tracker_flavor.runs import metadata as keys
from tracker_flavor.runs import tags
from tracker_flavor.runs.metadata import account
from tracker_flavor.runtime import runtime
from tracker_flavor.tracker import MLflowPlusExperimentTracker
from tracker_flavor.watcher import after_step, lineage, models

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], Any], seconds: float = 60) -> Any:
    """Return check()'s first truthy result: outputs arrive once ZenML published the step."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if result := check():
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            pytest.fail(f"{check} did not hold within {seconds}s")
        time.sleep(0.5)


def delivered(step: str, pipeline_name: str) -> Any:
    """Wait for the step's account (recorded last, as something was skipped); return the step run."""

    def account() -> Any:
        run = Client().get_pipeline(pipeline_name).last_run
        step_run = Client().get_run_step(run.steps[step].id)
        return step_run if keys.ARTIFACTS_KEY in step_run.run_metadata else None

    return eventually(account)


def test_embedded_store_and_one_warning_per_skipped_output(zenml_stack, embedded_client, caplog):
    guarded_pipeline()
    step_run = delivered("describe", "guarded_pipeline")
    load_run = delivered("load", "guarded_pipeline")
    run_id = step_run.run_metadata["mlflow_run_id"]
    listed = [a.path for a in embedded_client.list_artifacts(run_id, "zenml/describe/summary")]
    assert any(path.endswith(".html") for path in listed), listed  # the report, by default
    assert not embedded_client.list_artifacts(run_id, "zenml/load/frame/data")  # too large
    # Its files and its report; the model no flavor saves.
    assert account(load_run.run_metadata)[keys.ARTIFACTS_SKIPPED_KEY] == 2
    assert account(step_run.run_metadata)[keys.ARTIFACTS_SKIPPED_KEY] == 1
    assert "output 'frame' is not stored in MLflow (track_intermediates)" in caplog.text
    assert "max_artifact_mb=0.0001" in caplog.text
    assert "Output 'summary' is not logged as an MLflow model (log_model)" in caplog.text
    entries = embedded_client.get_run(run_id).inputs.dataset_inputs
    assert {e.dataset.digest for e in entries} >= {str(load_run.outputs["frame"][0].id)}


@pytest.fixture(scope="module")
def served(zenml_stack, mlflow_server) -> Iterator[tuple[MlflowServer, Proxy]]:
    """A real server with proxied artifacts, behind a counting proxy, in the active stack.

    Module-scoped and first used after the embedded-store test, which needs the session stack.
    """
    with Proxy(mlflow_server.url) as proxy, active_stack("outputs", f"tracking_uri={proxy.url}"):
        yield mlflow_server, proxy


def test_outputs_reports_lineage_model_and_system_metrics_reach_the_server(
    served, tmp_path, process_snapshot
):
    server, _ = served
    run = outputs_pipeline()
    # No waiting: the steps ran in this process, so all of it is in MLflow when the run returns.
    run = Client().get_pipeline_run(run.id)
    train_run, load_run = run.steps["train"], run.steps["load"]
    assert run.steps["deploy"].outputs["predictions"][0].load() == [0, 1]  # a later step loaded it
    client = MlflowClient(server.url)
    mlflow_run = client.get_run(train_run.run_metadata["mlflow_run_id"])  # the parent: unified
    assert mlflow_run.data.tags[tags.PIPELINE_RUN_ID] == str(run.id)
    run_id = mlflow_run.info.run_id
    assert run_id == load_run.run_metadata["mlflow_run_id"]

    # Artifacts under zenml/<step>/<output>/, through the server's proxied upload.
    assert mlflow_run.info.artifact_uri.startswith("mlflow-artifacts:")
    listed = {a.path for a in client.list_artifacts(run_id, "zenml/train/report")}
    report_files = [p for p in listed if p.endswith(".html")]
    assert report_files, listed
    report = Path(client.download_artifacts(run_id, report_files[0], str(tmp_path)))
    assert "Training report" in report.read_text()
    frame_files = client.list_artifacts(run_id, "zenml/load/frame/data")
    assert frame_files, "track_intermediates=['frame'] stored the DataFrame's files"
    downloaded = Path(client.download_artifacts(run_id, "zenml/load/frame/data", str(tmp_path)))
    assert any(downloaded.rglob("*")), "the DataFrame's files download"
    assert client.list_artifacts(run_id, "zenml/train/model/data")  # track_output: a result
    # The model's data, the report, and the model all arrived: no account costs ZenML a request.
    assert keys.ARTIFACTS_KEY not in train_run.run_metadata

    # Dataset entries name the ZenML artifact versions, inputs and outputs.
    sources = {}
    for entry in mlflow_run.inputs.dataset_inputs:
        assert entry.dataset.source_type == lineage.SOURCE_TYPE
        context = {t.key: t.value for t in entry.tags}
        sources[(context[lineage.STEP_TAG], context[lineage.CONTEXT_TAG], entry.dataset.name)] = (
            entry.dataset.digest,
            json.loads(entry.dataset.source),
        )
    frame = load_run.outputs["frame"][0]
    # One entry per artifact version and run: in unified mode `train` reads what `load` wrote.
    digest, source = sources[("load", "output", frame.artifact.name)]
    assert digest == str(frame.id)
    assert source == {
        "artifact_version_id": str(frame.id),
        "name": frame.artifact.name,
        "version": str(frame.version),
        "uri": frame.uri,
    }
    report_version = train_run.outputs["report"][0]
    assert sources[("train", "output", report_version.artifact.name)][0] == str(report_version.id)

    # The ZenML artifact versions carry the MLflow run's link.
    for version in (frame, report_version):
        metadata = Client().get_artifact_version(version.id).run_metadata
        assert metadata["mlflow_run_id"] == run_id
        assert str(metadata[METADATA_EXPERIMENT_TRACKER_URL]).endswith(
            f"/runs/{run_id}?workflowType=machine_learning"
        )

    # The registered model version, with its ZenML ids, loads with pyfunc.
    model_version_id = train_run.outputs["model"][0].id
    (registered,) = client.search_model_versions(
        f"name = '{REGISTERED_MODEL}' and run_id = '{run_id}'"
    )
    ids = {
        tags.PIPELINE_RUN_ID: str(run.id),
        tags.STEP_RUN_ID: str(train_run.id),
        models.ARTIFACT_VERSION_ID: str(model_version_id),
    }
    assert registered.tags == ids
    if has_logged_models():  # MLflow 3: a LoggedModel of the run, as MLflow's log_model makes
        from mlflow.entities import LoggedModelStatus

        (output,) = client.get_run(run_id).outputs.model_outputs
        logged = client.get_logged_model(output.model_id)
        assert (logged.name, logged.source_run_id) == ("model", run_id)
        assert logged.status == LoggedModelStatus.READY
        assert ids.items() <= logged.tags.items()
        assert registered.source == f"models:/{logged.model_id}"
        files = {a.path for a in client.list_logged_model_artifacts(logged.model_id)}
        assert {"MLmodel", "requirements.txt"} <= files, files
    else:
        assert registered.source == f"runs:/{run_id}/model"
    local = mlflow.artifacts.download_artifacts(
        client.get_model_version_download_uri(REGISTERED_MODEL, registered.version),
        dst_path=str(tmp_path / "model"),
        tracking_uri=server.url,
    )
    loaded = mlflow.pyfunc.load_model(local)
    assert list(loaded.predict(pd.DataFrame({"x": [0.0, 5.0]}))) == [0, 1]
    zenml_model = Client().get_pipeline_run(run.id).model_version
    assert zenml_model is not None
    metadata = Client().zen_store.get_model_version(zenml_model.id).run_metadata
    assert metadata[keys.MODEL_VERSION_KEY] == str(registered.version)
    assert str(metadata[keys.MODEL_VERSION_URL_KEY]).endswith(
        f"/#/models/{REGISTERED_MODEL}/versions/{registered.version}"
    )

    # System metrics per step, prefixed by the step name (unified mode).
    for step in ("load", "train"):
        key = f"system/{step}/cpu_utilization_percentage"
        assert key in mlflow_run.data.metrics, sorted(mlflow_run.data.metrics)


ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
LOG_INPUTS = "/api/2.0/mlflow/runs/log-inputs"
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
OFF = {"track_reports": False, "lineage": False}
"""With these (and the other options at their defaults) nothing is sent after the step."""


ARTIFACT_READS = ("list_artifact_versions", "get_artifact_version")


def test_a_step_s_outputs_go_while_the_next_step_runs_and_all_are_in_when_the_run_returns(
    served, process_snapshot, monkeypatch
):
    """The local orchestrator launches the steps one at a time: each one's outputs are sent on a
    thread of their own while ZenML launches the next; the last step's before the run returns."""
    server, _ = served
    senders: list[str] = []
    send = after_step.after_step

    def recorded(*args: Any, **kwargs: Any) -> None:
        senders.append(threading.current_thread().name)
        send(*args, **kwargs)

    monkeypatch.setattr(after_step, "after_step", recorded)
    run = Client().get_pipeline_run(bench_linear(steps=3).id)
    assert senders == [after_step.SENDER_THREAD] * 2 + [threading.current_thread().name]
    # No waiting: every step's report is in MLflow, none recorded as missing.
    client = MlflowClient(server.url)
    run_id = str(run.run_metadata[keys.PARENT_RUN_ID_KEY])
    for step, step_run in run.steps.items():
        assert [a.path for a in client.list_artifacts(run_id, f"zenml/{step}/output")] == [
            f"zenml/{step}/output/data.json"
        ]
        assert keys.ARTIFACTS_KEY not in step_run.run_metadata
    assert len(client.get_run(run_id).inputs.dataset_inputs) == 3
    assert runtime.deliveries.handed() == []


def counted(
    calls: Counter[str], name: str, call: Callable[..., Any], thread: str = ""
) -> Callable[..., Any]:
    """Return `call`, counting in `calls[name]` its calls from threads named `thread…`."""

    def watched(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name.startswith(thread):
            calls[name] += 1
        return call(*args, **kwargs)

    return watched


def test_every_option_off_costs_two_requests_per_step_and_the_defaults_two_more(
    served, process_snapshot, monkeypatch
):
    _, proxy = served
    sent, read, reads = {}, {}, Counter[str]()
    store = type(Client().zen_store)
    for method in ARTIFACT_READS:
        monkeypatch.setattr(store, method, counted(reads, method, getattr(store, method)))
    for name, settings in (("off", OFF), ("defaults", {})):
        pipeline = bench_linear.with_options(settings={"experiment_tracker": settings})
        seen, reads_seen = Counter(proxy.requests), reads.total()
        with Probe(lambda: proxy.total).instrumented(MLflowPlusExperimentTracker) as probe:
            with probe.run() as steps:
                run = pipeline()
        if name == "off":
            assert all(sample.requests <= 2 for sample in steps[1:-1]), steps
            runtime.watcher.check()  # the watcher saw every step: it sent nothing
        else:  # the steps ran here: their outputs were sent before the run returned, all well
            recorded = Client().get_pipeline_run(run.id).steps.values()
            assert not any(keys.ARTIFACTS_KEY in step.run_metadata for step in recorded)
        sent[name] = Counter(proxy.requests) - seen
        read[name] = reads.total() - reads_seen
    # The reports' files are known from ZenML's storing of the outputs: no read of them.
    assert read["defaults"] == read["off"], read
    uploads = [path for path in sent["defaults"] if path.startswith(ARTIFACTS)]
    assert not any(path.startswith(ARTIFACTS) for path in sent["off"]), sent
    assert LOG_INPUTS not in sent["off"]
    # The defaults add, per step, its JSON report (ZenML's visualization of an int) and lineage.
    assert sorted(path.rsplit("/artifacts/", 1)[1] for path in uploads) == sorted(
        f"zenml/{step}/output/data.json" for step in run.steps
    )
    assert sent["defaults"][LOG_INPUTS] == LINEAR_STEPS
    assert sent["defaults"][LOG_BATCH] == sent["off"][LOG_BATCH] == 2 * LINEAR_STEPS


WATCHER_STORE_CALLS = (
    "get_run_step", "list_run_steps", "list_runs", "get_run", "list_artifact_versions",
    "get_artifact_version", "create_run_metadata",
)  # fmt: skip


def test_a_step_published_by_another_process_is_settled_from_the_watcher_s_listing(
    served, process_snapshot, monkeypatch
):
    """No launch here returns the steps (a step operator's process): the watcher's poll lists
    them with their outputs; settling one reads no more of it and writes nothing to ZenML."""
    server, _ = served
    store = type(Client().zen_store)
    calls: Counter[str] = Counter()
    for name in WATCHER_STORE_CALLS:
        monkeypatch.setattr(store, name, counted(calls, name, getattr(store, name), WATCHER_THREAD))
    runtime.install()  # else the first step would put the launch hook in
    runtime.launches.uninstall()
    try:
        run = Client().get_pipeline_run(bench_linear(steps=2).id)
        wait_for_watcher()
    finally:
        runtime.launches.install()
    client = MlflowClient(server.url)
    run_id = str(run.run_metadata[keys.PARENT_RUN_ID_KEY])
    for step in run.steps:
        assert [a.path for a in client.list_artifacts(run_id, f"zenml/{step}/output")] == [
            f"zenml/{step}/output/data.json"  # its report: ZenML's visualization of an int
        ]
    assert len(client.get_run(run_id).inputs.dataset_inputs) == 2  # the lineage
    # One read per step of its outputs' reports, besides the polls; the steps never read back.
    assert calls["list_artifact_versions"] == 2, calls
    assert calls["list_run_steps"] >= 1
    assert not calls["get_run_step"] + calls["get_artifact_version"] + calls["create_run_metadata"]
