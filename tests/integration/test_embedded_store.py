"""The embedded store survives concurrent first use, and a half-migrated one is repaired."""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from testsupport.harness import ROOT
from testsupport.servers import free_port

pytestmark = pytest.mark.integration

# Each process imports ZenML first, then waits for the go file, so all four start the pipeline
# (and so first touch the store) within a few milliseconds of each other.
RUNNER = """
import os, sys, time
from tests.integration.pipelines import linear
while not os.path.exists(sys.argv[1]):
    time.sleep(0.005)
linear(count=1)
"""


def fresh_embedded_stack(tmp_path: Path) -> tuple[str, Path]:
    """Register a stack whose local artifact store (and so embedded store) is still empty."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path / "artifacts"
    store = client.create_stack_component(
        name, "local", StackComponentType.ARTIFACT_STORE, {"path": str(artifacts)}
    )
    default = client.get_stack("default")
    tracker = client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "mlflow_plus")
    stack = client.create_stack(
        name,
        components={
            StackComponentType.ARTIFACT_STORE: [store.id],
            StackComponentType.ORCHESTRATOR: [
                default.components[StackComponentType.ORCHESTRATOR][0].id
            ],
            StackComponentType.EXPERIMENT_TRACKER: [tracker.id],
        },
    )
    return str(stack.id), artifacts


def run_pipelines(stack_id: str, count: int, workdir: Path) -> list[tuple[int, str]]:
    """Run `linear` in `count` processes released at the same moment; return codes and logs."""
    go = workdir / f"go-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "ZENML_ACTIVE_STACK_ID": stack_id}
    logs = [workdir / f"{go.name}-{i}.log" for i in range(count)]
    processes = []
    for log in logs:
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", RUNNER, str(go)],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
    time.sleep(2)  # let the imports finish so the processes wait on the go file
    go.touch()
    codes = [process.wait(timeout=600) for process in processes]
    return [(code, log.read_text()) for code, log in zip(codes, logs, strict=True)]


def parent_runs(artifacts: Path) -> list[object]:
    """Return the parent (pipeline) runs in the embedded store of `artifacts`."""
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from tracker_flavor.mlflow.embedded import embedded_tracking_uri
    from tracker_flavor.runtime import runtime

    client = MlflowClient(embedded_tracking_uri(str(artifacts), runtime.mlflow.stores))
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [
        run
        for run in client.search_runs(experiments, max_results=1000)
        if MLFLOW_PARENT_RUN_ID not in run.data.tags
    ]


# The race is timing-dependent: three fresh stores, each created by four processes at once.
@pytest.mark.parametrize("round_", range(3))
def test_four_processes_create_a_fresh_embedded_store_at_once(zenml_stack, tmp_path, round_):
    stack_id, artifacts = fresh_embedded_stack(tmp_path)
    for code, log in run_pipelines(stack_id, 4, tmp_path):
        assert code == 0, log[-3000:]
        assert "failed" not in log.lower(), log[-3000:]
    if round_ == 0:  # one later run is enough to show the store stayed usable
        ((code, log),) = run_pipelines(stack_id, 1, tmp_path)
        assert code == 0, log[-3000:]
    assert len(parent_runs(artifacts)) == (5 if round_ == 0 else 4)


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh process of the project."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


# A process opening the embedded store. Only the store's own modules: importing ZenML would
# replace Python's traceback (whose last line the tests read) with its boxed one.
PREPARE = """
import sys
from tracker_flavor.concurrency.caches import Once
from tracker_flavor.mlflow.embedded import embedded_tracking_uri
from tracker_flavor.mlflow.internals import Internals
from tracker_flavor.mlflow.sqlite_store import LocalStores
embedded_tracking_uri(sys.argv[1], LocalStores(Internals(Once())))
"""


def test_a_current_store_is_used_without_taking_the_lock(zenml_stack, tmp_path):
    import fcntl

    stack_id, artifacts = fresh_embedded_stack(tmp_path)
    assert run_python(PREPARE, str(artifacts)).returncode == 0
    with open(artifacts / "mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a process creating the store would hold this
        used = run_python(PREPARE, str(artifacts), timeout=60)
    assert used.returncode == 0, used.stderr


RUNS = """
import json, sys
from mlflow import MlflowClient
client = MlflowClient("sqlite:///" + sys.argv[1])
ids = [e.experiment_id for e in client.search_experiments()]
runs = client.search_runs(ids, max_results=1000)
print(json.dumps({r.info.run_id: [r.data.metrics, r.data.params, r.data.tags] for r in runs}))
"""


def runs_in(database: Path) -> dict[str, list[dict[str, object]]]:
    """Return every run of a store with its metrics, params and tags, read by a new process."""
    read = run_python(RUNS, str(database))
    assert read.returncode == 0, read.stderr
    return dict(json.loads(read.stdout))


def test_ui_waits_while_another_process_creates_the_store(zenml_stack, tmp_path):
    import fcntl

    import psutil

    from tests.cli.conftest import BIN
    from tracker_flavor.mlflow.sqlite_store import head_revision

    stack_id, artifacts = fresh_embedded_stack(tmp_path)
    artifacts.mkdir(parents=True)
    env = {**os.environ, "ZENML_ACTIVE_STACK_ID": stack_id}
    with open(artifacts / "mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a pipeline process creating the store holds it
        ui = subprocess.Popen(
            [str(BIN), "ui", "--print-command"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        waiting = psutil.Process(ui.pid)
        deadline = time.monotonic() + 120
        while str(artifacts / "mlflow.db.lock") not in [f.path for f in waiting.open_files()]:
            assert ui.poll() is None and time.monotonic() < deadline, ui.communicate()
            time.sleep(0.2)
        time.sleep(1)
        assert ui.poll() is None  # still waiting for the store
        assert not (artifacts / "mlflow.db").exists()
    out, err = ui.communicate(timeout=120)
    assert ui.returncode == 0, err
    assert f"--backend-store-uri sqlite:///{artifacts / 'mlflow.db'}" in out
    assert sqlite3_revision(artifacts / "mlflow.db") == head_revision()


def sqlite3_revision(database: Path) -> str:
    """Return the schema revision recorded in a store."""
    import sqlite3

    with sqlite3.connect(database) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_a_half_migrated_store_is_refused_then_repaired_keeping_every_run(zenml_stack, tmp_path):
    import sqlite3

    from tests.cli.conftest import zenml_mlflow

    stack_id, artifacts = fresh_embedded_stack(tmp_path)
    for code, log in run_pipelines(stack_id, 2, tmp_path):
        assert code == 0, log[-3000:]
    database = artifacts / "mlflow.db"
    before = runs_in(database)
    assert len(before) == 2
    # As a crash leaves it: the workspace migration applied, its version not recorded, and
    # Alembic's copy of a table it was rebuilding still there.
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = 'c8d9e0f1a2b3'")
        db.execute("CREATE TABLE _alembic_tmp_experiments AS SELECT * FROM experiments")

    refused = run_python(PREPARE, str(artifacts))
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "tracker_flavor.mlflow.sqlite_store.StoreSchemaError: the MLflow store "
    )
    message = error.split(": ", 1)[1]
    assert "has schema revision c8d9e0f1a2b3 and the tables of an interrupted migration" in message
    assert message.endswith(f"zenml-mlflow store repair --db {database}")
    served = zenml_mlflow(
        "server", "start", "--data-dir", str(tmp_path / "server"),
        "--backend-store-uri", f"sqlite:///{database}", "--port", str(free_port()),
    )  # fmt: skip
    assert served.returncode == 1 and served.stderr == f"Error: {message}\n"

    repaired = zenml_mlflow("store", "repair", "--db", str(database))
    assert repaired.returncode == 0, repaired.stderr
    assert f"repaired {database}: schema current, 2 runs kept; backup in " in repaired.stdout
    backup = Path(repaired.stdout.split("backup in ")[1].strip())
    assert backup.exists() and backup.stat().st_size > 0

    ((code, log),) = run_pipelines(stack_id, 1, tmp_path)
    assert code == 0, log[-3000:]
    after = runs_in(database)
    assert {run_id: after[run_id] for run_id in before} == before
    assert len(after) == 3
