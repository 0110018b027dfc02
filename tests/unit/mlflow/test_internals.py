"""The seam: private MLflow API only in tracker_flavor/mlflow/internals.py, a fallback for each."""

import ast
import logging
import types
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from tracker_flavor.delivery import ledger
from tracker_flavor.delivery.queue import Ledgers
from tracker_flavor.mlflow import internals
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
OWN_PRIVATE_NAMES = {
    "_replace",  # namedtuple's public method
    "_tracking_server_error",  # our own marker on the excepthook (errors.py)
}


def private_uses(path: Path) -> list[str]:
    """Return the private names of other packages that the module at `path` touches."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [alias.name for alias in node.names]
            if any(part.startswith("_") for part in node.module.split(".")) or any(
                name.startswith("_") for name in names
            ):
                found.append(f"{path.name}:{node.lineno} from {node.module} import {names}")
        elif isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not own and node.attr not in OWN_PRIVATE_NAMES:
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_private_api_is_touched_only_in_the_seam():
    seam = ROOT / "tracker_flavor" / "mlflow" / "internals.py"
    modules = [*(ROOT / "tracker_flavor").rglob("*.py"), *ROOT.glob("cli/*.py")]
    uses = [use for path in modules if path != seam for use in private_uses(path)]
    assert uses == []
    assert private_uses(seam)  # the check can see them


@pytest.fixture
def tracking_uri(sqlite_uri):
    """A fresh SQLite store as the process's tracking URI, as the tracker sets it in steps."""
    uri = sqlite_uri
    before = runtime.mlflow.seam.process_tracking_uri()
    runtime.mlflow.seam.set_process_tracking_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    runtime.mlflow.seam.set_process_tracking_uri(before)


@pytest.fixture
def fresh_warnings():
    runtime.reset()


def degraded() -> list[internals.TouchPoint]:
    """Return the touch points warned about since `fresh_warnings` (warned now, if not)."""
    return [point for point in internals.TOUCH_POINTS if not runtime.once.first(point)]


def test_without_mlflows_schema_helpers_the_store_is_left_to_mlflow(
    tmp_path, fresh_warnings, monkeypatch
):
    from mlflow.store.db import utils as db_utils

    monkeypatch.delattr(db_utils, "_get_latest_schema_revision")
    runtime.mlflow.stores.prepare(tmp_path / "mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
    assert degraded() == [internals.SCHEMA]


def test_every_touch_point_is_in_the_docs_table():
    doc = (ROOT / "docs" / "versions.md").read_text().replace("`", "").replace('"', "'")
    for point in internals.TOUCH_POINTS:
        assert f"| {point.internal} | {point.purpose} | {point.fallback} |" in doc, point


def test_the_parent_as_active_run_is_built_with_the_installed_mlflows_signature():
    run = Parent("abc", "1", "train", 1700000000000, "RUNNING").active_run()
    assert (run.info.run_id, run.info.experiment_id, run.info.run_name) == ("abc", "1", "train")
    assert run.info.status == "RUNNING"


def test_a_missing_internal_warns_once_naming_it_and_the_fallback(fresh_warnings, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            runtime.mlflow.seam.degrade(internals.VALIDATORS, ImportError("gone"))
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert internals.VALIDATORS.internal in message and internals.VALIDATORS.fallback in message
    assert f"MLflow {mlflow.__version__}" in message and "2.22.1, 3.10.1, 3.17.2" in message


def test_without_the_active_run_stack_the_public_api_makes_the_run_active(
    tracking_uri, monkeypatch
):
    client = MlflowClient(tracking_uri)
    parent = client.create_run("0", run_name="parent")
    monkeypatch.setattr(runtime.mlflow.seam, "_fluent_stack", lambda: None)  # as if MLflow had none
    runtime.mlflow.seam.push_active_run(parent)
    assert mlflow.active_run().info.run_id == parent.info.run_id
    user_run = mlflow.start_run(nested=True)
    client.set_terminated(parent.info.run_id, "FAILED")  # the tracker's status stays
    assert runtime.mlflow.seam.pop_active_runs(parent.info.run_id) == [user_run.info.run_id]
    assert mlflow.active_run() is None
    assert client.get_run(parent.info.run_id).info.status == "FAILED"


def test_with_the_active_run_stack_no_request_is_made(tracking_uri):
    client = MlflowClient(tracking_uri)
    parent = client.create_run("0", run_name="parent")
    runtime.mlflow.seam.push_active_run(parent)
    assert mlflow.active_run().info.run_id == parent.info.run_id
    assert runtime.mlflow.seam.pop_active_runs(parent.info.run_id) == []
    assert mlflow.active_run() is None
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"


def test_without_the_stores_async_queue_params_are_logged_at_once_and_nothing_is_batched(
    tracking_uri, fresh_warnings, monkeypatch
):
    client = MlflowClient(tracking_uri)
    run = client.create_run("0")
    store = runtime.mlflow.seam.tracking_store(tracking_uri)
    monkeypatch.delattr(store, "_async_logging_queue")
    step = uuid.uuid4()
    ledgers = Ledgers(runtime.mlflow.seam, runtime.mlflow.autologging.lock)
    ledgers.open(step, tracking_uri, run.info.run_id, {"alpha": "0.1"})
    assert client.get_run(run.info.run_id).data.params == {"alpha": "0.1"}
    assert ledgers.metadata(step) == {}
    assert ledgers.close(step) is None
    assert degraded() == [internals.ASYNC_QUEUE]


def test_without_mlflows_validators_every_value_goes_to_the_store(fresh_warnings, monkeypatch):
    monkeypatch.setattr(runtime.mlflow.seam, "validators", lambda: None)
    values = [Metric("bad!", 1.0, 0, 0)], [Param("p", "v")], [RunTag("t", "v")]
    metrics, params, tags, refused = ledger.validated(runtime.mlflow.seam, *values)
    assert (metrics, params, tags, refused) == (*map(list, values), [])


def test_the_process_tracking_uri_falls_back_to_the_public_api(fresh_warnings, monkeypatch):
    from mlflow.tracking import _tracking_service

    runtime.mlflow.seam.set_process_tracking_uri("sqlite:///somewhere.db")
    try:
        assert runtime.mlflow.seam.process_tracking_uri() == "sqlite:///somewhere.db"
        monkeypatch.setattr(_tracking_service, "utils", types.SimpleNamespace())  # no _tracking_uri
        assert runtime.mlflow.seam.process_tracking_uri() == "sqlite:///somewhere.db"
        assert degraded() == [internals.TRACKING_URI]
    finally:
        monkeypatch.undo()
        runtime.mlflow.seam.set_process_tracking_uri(None)
    assert runtime.mlflow.seam.process_tracking_uri() is None


def test_the_auth_provider_is_known_to_mlflow_without_its_entry_point():
    from mlflow.tracking.request_auth.registry import _request_auth_provider_registry, fetch_auth

    from tracker_flavor.auth_provider import ConnectionAuthProvider

    providers = _request_auth_provider_registry._registry
    ours = [p for p in providers if p.get_name() == "mlflow_plus"]
    for provider in ours:  # as if the package's entry point were not installed
        providers.remove(provider)
    try:
        runtime.mlflow.seam.register_auth_provider(ConnectionAuthProvider, "mlflow_plus")
        runtime.mlflow.seam.register_auth_provider(ConnectionAuthProvider, "mlflow_plus")
        assert [p.get_name() for p in providers].count("mlflow_plus") == 1
        assert fetch_auth("mlflow_plus") is not None
    finally:
        providers[:] = [p for p in providers if p.get_name() != "mlflow_plus"] + ours
