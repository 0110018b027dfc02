"""Unit-test fixtures: SQLite MLflow stores copied from one migrated at the start of the session,
and what a fresh interpreter imports (started once collection is done, beside the tests)."""

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
        "import tracker_flavor.flavor, tracker_flavor.config, tracker_flavor.settings",
        "import tracker_flavor.batching",
        "flavor = sorted(sys.modules)",
        "import tracker_flavor.tracker",
        'print(json.dumps({"flavor": flavor, "tracker": sorted(sys.modules)}))',
    ]
)
FRESH_INTERPRETER = pytest.StashKey[subprocess.Popen[str]]()


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
    """Start the fresh interpreter if a selected test needs it: it imports while tests run."""
    if any("fresh_imports" in getattr(item, "fixturenames", ()) for item in session.items):
        session.config.stash[FRESH_INTERPRETER] = subprocess.Popen(
            [sys.executable, "-c", FRESH_IMPORTS],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """End the fresh interpreter if its tests did not run to the end."""
    process = config.stash.get(FRESH_INTERPRETER, None)
    if process is not None and process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="session")
def fresh_imports(pytestconfig: pytest.Config) -> SimpleNamespace:
    """Return the modules loaded by the flavor's modules (`flavor`), then by the tracker's."""
    process = pytestconfig.stash[FRESH_INTERPRETER]
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return SimpleNamespace(**json.loads(out))
