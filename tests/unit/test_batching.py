"""The batching queue delivers everything in few requests and accounts exactly for losses."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.rest_store import RestStore
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.rest_utils import MlflowHostCreds

from tests.support.servers import free_port
from tracker_flavor.batching import WINDOW_SECONDS, BatchingQueue, Ledger

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_store(tmp_path):
    return SqlAlchemyStore(f"sqlite:///{tmp_path}/mlflow.db", f"file://{tmp_path}/artifacts")


def metric(index: int) -> Metric:
    return Metric("loss", index * 0.1, int(time.time() * 1000), index)


def test_thousands_of_single_values_arrive_in_batches_of_at_most_a_thousand(sqlite_store):
    run = sqlite_store.create_run("0", "u", 0, [], "r")
    batches = []

    def log_batch(run_id, metrics, params, tags):
        batches.append(len(metrics) + len(params) + len(tags))
        sqlite_store.log_batch(run_id, metrics, params, tags)

    queue = BatchingQueue(log_batch)
    ledger = Ledger(run.info.run_id, "sqlite")
    queue.open(ledger)
    for index in range(2500):
        queue.log_batch_async(run.info.run_id, [], [], [metric(index)])
    queue.log_batch_async(
        run.info.run_id, [Param(f"p{i}", "v") for i in range(150)], [RunTag("t", "v")], []
    )
    queue.close(ledger)
    queue.stop()

    assert ledger.submitted == ledger.delivered == 2651
    assert ledger.failure() is None
    assert max(batches) <= 1000 and len(batches) <= 5
    assert len(sqlite_store.get_metric_history(run.info.run_id, "loss")) == 2500
    assert len(sqlite_store.get_run(run.info.run_id).data.params) == 150


def test_values_are_sent_within_the_window_without_a_flush(sqlite_store):
    run = sqlite_store.create_run("0", "u", 0, [], "r")
    queue = BatchingQueue(sqlite_store.log_batch)
    operations = queue.log_batch_async(run.info.run_id, [], [], [metric(1)])
    time.sleep(WINDOW_SECONDS * 2.5)
    assert len(sqlite_store.get_metric_history(run.info.run_id, "loss")) == 1
    operations.wait()
    queue.stop()


def test_an_unreachable_store_is_reported_with_the_exact_count(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    store = RestStore(lambda: MlflowHostCreds(f"http://127.0.0.1:{free_port()}"))
    queue = BatchingQueue(store.log_batch)
    ledger = Ledger("run1", "http://nowhere")
    queue.open(ledger)
    operations = [queue.log_batch_async("run1", [], [], [metric(i)]) for i in range(1500)]
    queue.close(ledger)
    queue.stop()

    assert ledger.submitted == 1500 and ledger.delivered == 0
    error = ledger.failure()
    assert error is not None
    assert str(error).startswith("1500 of 1500 points")
    with pytest.raises(MlflowException, match="async logging"):
        operations[-1].wait()


def modules_imported_by(statement: str, prefixes: tuple[str, ...]) -> list[str]:
    """Run `statement` in a fresh interpreter; return the loaded modules under `prefixes`."""
    code = (
        f"import json, sys; {statement}; "
        f"print(json.dumps([m for m in sys.modules if m.startswith({prefixes!r})]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return sorted(json.loads(result.stdout))


def test_importing_the_flavor_does_not_import_mlflow():
    statement = (
        "import tracker_flavor.flavor, tracker_flavor.config, tracker_flavor.settings, "
        "tracker_flavor.batching"
    )
    assert modules_imported_by(statement, ("mlflow",)) == []


def test_the_tracker_module_imports_no_model_flavor_or_server_code():
    unneeded = (
        "mlflow.sklearn",
        "mlflow.server",
        "mlflow.pytorch",
        "mlflow.tensorflow",
        "zenml.integrations.mlflow",
    )
    assert modules_imported_by("import tracker_flavor.tracker", unneeded) == []
