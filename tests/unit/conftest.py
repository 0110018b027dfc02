"""Unit-test fixtures: SQLite MLflow stores copied from one migrated at the start of the session."""

import shutil
from pathlib import Path

import pytest


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
