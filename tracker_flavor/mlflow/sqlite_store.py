"""A local SQLite MLflow store: created once under a file lock, checked current, and repaired.

MLflow creates and migrates a SQLite schema on first connect from every process at once, and
SQLite DDL is not transactional there: processes starting together leave the store
half-migrated. Here one process creates it (in a side file, moved into place when complete)
while the others wait on a lock beside the database; a process that finds the schema current
takes no lock and does no migration work.
"""

import datetime
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.concurrency.locks import KeyLocks
from tracker_flavor.mlflow import internals

LOCK_SUFFIX = ".lock"
# SQLite waits this long for another writer's lock instead of failing with "database is locked".
BUSY_TIMEOUT_SECONDS = 60.0
# Alembic's batch migrations rebuild a table through one of these; a leftover one means a
# migration was interrupted.
ALEMBIC_TMP_PREFIX = "_alembic_tmp_"
ALEMBIC_VERSION_TABLE = "alembic_version"


class StoreSchemaError(RuntimeError):
    """The store's schema is not the one this MLflow needs, and must be repaired."""


def sqlite_path(uri: str) -> Path | None:
    """Return the database file of a `sqlite:///` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def head_revision() -> str:
    """Return the schema revision the installed MLflow needs."""
    return internals.latest_schema_revision()


def known_revision(revision: str) -> bool:
    """Tell whether the installed MLflow has a migration to `revision`."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = internals.alembic_config("")
    try:
        ScriptDirectory.from_config(config).get_revision(revision)
    except CommandError:
        return False
    return True


def connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the database with the busy timeout; raise sqlite3.Error if it is missing."""
    mode = "rwc" if create else "rw"
    return sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT_SECONDS)


def schema_state(path: Path) -> tuple[str | None, list[str], bool]:
    """Return the recorded revision, leftover migration tables, and whether MLflow tables exist."""
    try:
        with closing(connect(path)) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
            revision = None
            if ALEMBIC_VERSION_TABLE in tables:
                row = db.execute(f"SELECT version_num FROM {ALEMBIC_VERSION_TABLE}").fetchone()
                revision = row[0] if row else None
    except sqlite3.Error:
        return None, [], False
    leftovers = [name for name in tables if name.startswith(ALEMBIC_TMP_PREFIX)]
    return revision, leftovers, any(not name.startswith("alembic_") for name in tables)


def is_current(path: Path) -> bool:
    """Tell whether the store's schema is complete at the installed MLflow's revision."""
    revision, leftovers, _ = schema_state(path)
    return revision == head_revision() and not leftovers


def diagnose(path: Path) -> str | None:
    """Return what is wrong with the store's schema, or None if it is current or still empty."""
    revision, leftovers, has_tables = schema_state(path)
    if not has_tables or (revision == head_revision() and not leftovers):
        return None
    import mlflow

    found = f"schema revision {revision}" if revision else "no schema revision"
    if leftovers:
        found += f" and the tables of an interrupted migration ({', '.join(leftovers)})"
    return f"has {found}, but MLflow {mlflow.__version__} needs revision {head_revision()}"


def repair_message(path: Path, diagnosis: str) -> str:
    """Return the one-line error of a store that needs a repair, with the command."""
    return (
        f"the MLflow store {path} {diagnosis}: it was left half-migrated by an interrupted or "
        "concurrent first use, or written by another MLflow version. Repair it, keeping every "
        f"run (a backup is made first): zenml-mlflow store repair --db {path}"
    )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`.lock (beside a database) against other processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}{LOCK_SUFFIX}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


class LocalStores:
    """The SQLite stores this process found current, so each is checked once per process."""

    def __init__(self, seam: internals.Internals) -> None:
        self._seam = seam
        self._current: BoundedCache[Path, bool] = BoundedCache()
        self._locks = KeyLocks()

    def prepare(self, path: Path) -> None:
        """Create the store if it is missing, once across processes; fail if it needs a repair."""
        path = path.resolve()
        if self._current.get(path) or not self._seam.has_schema_tools():
            return
        with self._locks.hold(path):
            if self._current.get(path):
                return
            if not is_current(path):
                with locked(path):
                    if diagnosis := diagnose(path):
                        raise StoreSchemaError(repair_message(path, diagnosis))
                    if not is_current(path):
                        _build(path, revision=None)
            self._current.put(path, True)


def _build(path: Path, revision: str | None, fill: Path | None = None) -> None:
    """Write a store at `revision` (None: the head) in a side file, fill it, move it into place."""
    side = path.with_name(f"{path.name}.building")
    _remove(side)
    with closing(connect(side, create=True)) as db:
        # Persistent in the file: readers no longer block the writer, nor it them.
        db.execute("PRAGMA journal_mode=WAL")
    _migrate(side, revision)
    if fill is not None:
        copied = _copy(fill, side, skip=set())
        _migrate(side, None)
        # Tables that later migrations created get their rows now, at the head schema.
        _copy(fill, side, skip=copied)
    _remove(path, keep_database=True)
    os.replace(side, path)


def _migrate(path: Path, revision: str | None) -> None:
    """Create MLflow's tables in `path` if there are none, then migrate them to `revision`."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    uri = f"sqlite:///{path}"
    engine = sqlalchemy.create_engine(uri, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
    try:
        if not schema_state(path)[2]:
            InitialBase.metadata.create_all(engine)
        config = internals.alembic_config(uri)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision or "heads")
    finally:
        engine.dispose()


def _columns(db: sqlite3.Connection, schema: str, table: str) -> list[str]:
    """Return the columns of a table that can be written (not generated)."""
    rows = db.execute(f'PRAGMA {schema}.table_xinfo("{table}")').fetchall()
    return [row[1] for row in rows if row[6] == 0]


def _tables(db: sqlite3.Connection, schema: str) -> set[str]:
    """Return the tables of an attached database, without SQLite's and Alembic's own."""
    rows = db.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table'")
    return {
        name
        for (name,) in rows
        if not name.startswith(("sqlite_", ALEMBIC_TMP_PREFIX)) and name != ALEMBIC_VERSION_TABLE
    }


def _copy(source: Path, target: Path, *, skip: set[str]) -> set[str]:
    """Copy the rows of `source` into the tables `target` has, but `skip`; return those tables."""
    with closing(connect(target)) as db:
        db.execute("ATTACH DATABASE ? AS old", (f"file:{source}?mode=ro",))
        old_tables = _tables(db, "old") | {
            name.removeprefix(ALEMBIC_TMP_PREFIX)
            for (name,) in db.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")
            if name.startswith(ALEMBIC_TMP_PREFIX)
        }
        tables = (_tables(db, "main") & old_tables) - skip
        with db:
            for table in sorted(tables):
                # A table dropped before its rebuilt copy was renamed lives on in the copy.
                name = table if table in _tables(db, "old") else ALEMBIC_TMP_PREFIX + table
                shared = [c for c in _columns(db, "main", table) if c in _columns(db, "old", name)]
                columns = ", ".join(f'"{c}"' for c in shared)
                db.execute(
                    f'INSERT OR REPLACE INTO main."{table}" ({columns}) '
                    f'SELECT {columns} FROM old."{name}"'
                )
        return tables


def _remove(path: Path, *, keep_database: bool = False) -> None:
    """Delete a database file's WAL and shared-memory files (and the file unless kept)."""
    for suffix in ("-wal", "-shm") if keep_database else ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def row_counts(path: Path) -> dict[str, int]:
    """Return the number of rows of every MLflow table in the store."""
    with closing(connect(path)) as db:
        return {
            table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in sorted(_tables(db, "main"))
        }


def repair(path: Path) -> Path:
    """Back the store up, rebuild it at its recorded revision with every row, migrate it to head.

    Returns the backup. Raises StoreSchemaError, leaving the
    store as it was, if the rebuilt store would hold fewer rows in any table.
    """
    path = path.resolve()
    with locked(path):
        if not path.exists():
            raise StoreSchemaError(f"no MLflow store at {path}: nothing to repair.")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = path.with_name(f"{path.name}.backup-{stamp}")
        with closing(connect(path)) as db, closing(connect(backup, create=True)) as copy:
            db.backup(copy)
        revision, _, has_tables = schema_state(backup)
        if revision is not None and not known_revision(revision):
            raise StoreSchemaError(
                f"the MLflow store {path} has schema revision {revision}, which the installed "
                "MLflow does not know: a newer MLflow wrote it. Install that version (the store "
                f"is unchanged; backup in {backup})."
            )
        rebuilt = path.with_name(f"{path.name}.repaired")
        _remove(rebuilt)
        # The backup, not the live file, is read: the store is replaced only when complete.
        _build(rebuilt, revision, fill=backup if has_tables else None)
        before, after = row_counts(backup), row_counts(rebuilt)
        lost = {table: n for table, n in before.items() if after.get(table, 0) < n}
        if lost:
            _remove(rebuilt)
            raise StoreSchemaError(
                f"repairing {path} would lose rows of {', '.join(sorted(lost))}: the store was "
                f"left as it was (backup in {backup}); serve it with the MLflow version that "
                "wrote it and export the runs, or report this."
            )
        # Copied page by page into the same file under SQLite's locks, so that a process that
        # still has the store open reads the repaired store, not a deleted file.
        with closing(connect(rebuilt)) as source, closing(connect(path)) as target:
            source.backup(target)
        _remove(rebuilt)
        return backup
