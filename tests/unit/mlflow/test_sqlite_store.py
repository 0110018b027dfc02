"""Rules of the local SQLite store: which URIs are SQLite files, what needs a repair."""

import sqlite3
from pathlib import Path

import mlflow
import pytest

from tracker_flavor.mlflow.sqlite_store import (
    StoreSchemaError,
    diagnose,
    head_revision,
    is_current,
    sqlite_path,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:////data/mlflow.db", Path("/data/mlflow.db")),
        ("sqlite:///mlflow.db?timeout=5", Path("mlflow.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://u:p@db/mlflow", None),
        ("http://127.0.0.1:5001", None),
    ],
)
def test_sqlite_path(uri, path):
    assert sqlite_path(uri) == path


def store(tmp_path: Path, revision: str | None, *tables: str) -> Path:
    """Write a SQLite file with an MLflow-like table, a recorded revision and extra tables."""
    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (run_uuid TEXT)")
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        if revision:
            db.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
        for table in tables:
            db.execute(f"CREATE TABLE {table} (x INTEGER)")
    return path


def test_a_missing_or_empty_store_is_created_not_repaired(tmp_path):
    assert diagnose(tmp_path / "missing.db") is None
    (tmp_path / "empty.db").touch()
    assert diagnose(tmp_path / "empty.db") is None
    assert not is_current(tmp_path / "empty.db")


def test_a_current_store_needs_nothing(tmp_path):
    path = store(tmp_path, head_revision())
    assert is_current(path) and diagnose(path) is None


def test_an_old_revision_or_a_leftover_migration_table_needs_a_repair(tmp_path):
    old = store(tmp_path, "c8d9e0f1a2b3")
    assert diagnose(old) == (
        f"has schema revision c8d9e0f1a2b3, but MLflow {mlflow.__version__} needs revision {head_revision()}"
    )
    old.unlink()
    leftover = store(tmp_path, head_revision(), "_alembic_tmp_runs")
    assert not is_current(leftover)
    assert "and the tables of an interrupted migration (_alembic_tmp_runs)" in str(
        diagnose(leftover)
    )


def test_a_store_found_current_is_not_read_again_until_a_runtime_reset(migrated_db, tmp_path):
    from tracker_flavor.runtime import runtime

    path = tmp_path / "mlflow.db"
    path.write_bytes(migrated_db.read_bytes())
    runtime.mlflow.stores.prepare(path)
    path.unlink()
    runtime.mlflow.stores.prepare(path)  # known current: no look at the file
    assert not path.exists()
    store(tmp_path, "c8d9e0f1a2b3")  # one that needs a repair, were it read
    runtime.mlflow.stores.prepare(path)
    runtime.reset()
    with pytest.raises(StoreSchemaError, match="c8d9e0f1a2b3"):
        runtime.mlflow.stores.prepare(path)
