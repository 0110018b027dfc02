"""Unit-test fixtures: SQLite MLflow stores copied from one migrated at the start of the session,
and what fresh interpreters import (started once collection is done, beside the tests)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRESH_IMPORTS = "\n".join(
    [
        "import json, sys",
        "import tracker_flavor.flavor, tracker_flavor.config.component, tracker_flavor.config.settings",
        "import tracker_flavor.delivery.queue",
        "flavor = sorted(sys.modules)",
        "import tracker_flavor.tracker",
        'print(json.dumps({"flavor": flavor, "tracker": sorted(sys.modules)}))',
    ]
)
IMPORT_SIDE_EFFECTS = "\n".join(
    [
        "import atexit, importlib, json, logging, os, pkgutil, sys, threading, warnings",
        # What ZenML and MLflow set up when imported is theirs: imported first.
        "import mlflow, zenml",
        "from mlflow.tracking._tracking_service.client import TrackingServiceClient",
        "from zenml.utils import settings_utils",
        "LOGGERS = ['urllib3.connectionpool', 'zenml.orchestrators.local.local_orchestrator',",
        "           'zenml.orchestrators.dag_runner', 'zenml.execution.pipeline.dynamic.runner']",
        "def state():",
        "    return {",
        "        'excepthook': repr(sys.excepthook), 'warning filters': len(warnings.filters),",
        "        'threads': sorted(t.name for t in threading.enumerate()),",
        "        'exit callbacks': atexit._ncallbacks(),",
        "        'logging filters': [len(logging.getLogger(n).filters) for n in LOGGERS],",
        "        'settings key resolution': repr(settings_utils.resolve_stack_component_setting_key),",
        "        'run URL printing': repr(TrackingServiceClient._log_url),",
        "        'environment': sorted(os.environ),",
        "    }",
        "before = state()",
        "import tracker_flavor",
        "for found in pkgutil.walk_packages(tracker_flavor.__path__, 'tracker_flavor.'):",
        "    importlib.import_module(found.name)",
        "print(json.dumps({'before': before, 'after': state()}))",
    ]
)
FRESH_SCRIPTS = {"fresh_imports": FRESH_IMPORTS, "import_side_effects": IMPORT_SIDE_EFFECTS}
"""Scripts run each in a fresh interpreter, by the name of the fixture that reads its output."""
FRESH_INTERPRETERS = pytest.StashKey[dict[str, subprocess.Popen[str]]]()


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a SQLite MLflow store migrated once (MLflow's migrations take seconds)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    directory = tmp_path_factory.mktemp("migrated")
    store = SqlAlchemyStore(f"sqlite:///{directory}/mlflow.db", f"file://{directory}/artifacts")
    store.engine.dispose()
    return directory / "mlflow.db"


def copy_of(migrated_db: Path, directory: Path) -> str:
    """Return the URI of a fresh copy of the migrated store in `directory`."""
    shutil.copy(migrated_db, directory / "mlflow.db")
    return f"sqlite:///{directory}/mlflow.db"


@pytest.fixture
def sqlite_uri(migrated_db: Path, tmp_path: Path) -> str:
    """Return the URI of an empty SQLite MLflow store of the test's own."""
    return copy_of(migrated_db, tmp_path)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the fresh interpreters selected tests need: they import while tests run."""
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    session.config.stash[FRESH_INTERPRETERS] = {
        name: subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, script in FRESH_SCRIPTS.items()
        if name in needed
    }


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the fresh interpreters whose tests did not run to the end."""
    for process in config.stash.get(FRESH_INTERPRETERS, {}).values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def fresh_output(config: pytest.Config, name: str) -> SimpleNamespace:
    """Return what the fresh interpreter of `name` printed (JSON)."""
    process = config.stash[FRESH_INTERPRETERS][name]
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return SimpleNamespace(**json.loads(out))


@pytest.fixture(scope="session")
def fresh_imports(pytestconfig: pytest.Config) -> SimpleNamespace:
    """Return the modules loaded by the flavor's modules (`flavor`), then by the tracker's."""
    return fresh_output(pytestconfig, "fresh_imports")


@pytest.fixture(scope="session")
def import_side_effects(pytestconfig: pytest.Config) -> SimpleNamespace:
    """Return the process's hooks, filters, threads and environment before and after importing
    every module of the package (ZenML and MLflow imported before both)."""
    return fresh_output(pytestconfig, "import_side_effects")
