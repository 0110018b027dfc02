"""`zenml-mlflow store`: repair a local SQLite MLflow store left half-migrated."""

from pathlib import Path

import click

from tracker_flavor.mlflow import sqlite_store


@click.group()
def store() -> None:
    """Repair a local SQLite MLflow store: the embedded store or a local server's.

    Example: zenml-mlflow store repair
    """


@store.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite file (default: the embedded store of the active stack's artifact store).",
)
def repair(db: Path | None) -> None:
    """Back up the store, redo its schema migration and keep every run; stop its users first.

    Example: zenml-mlflow store repair --db ~/.config/zenml-mlflow/mlflow.db
    """
    if db is None:
        from zenml.client import Client

        from tracker_flavor.mlflow.embedded import embedded_database

        db = embedded_database(Client().active_stack.artifact_store.path)
    path = db.expanduser().resolve()
    if not path.exists():
        raise click.ClickException(f"no MLflow store at {path}: nothing to repair.")
    if (diagnosis := sqlite_store.diagnose(path)) is None:
        click.echo(f"nothing to repair: the schema of {path} is current.")
        return
    click.echo(f"{path} {diagnosis}: rebuilding it")
    try:
        backup = sqlite_store.repair(path)
    except sqlite_store.StoreSchemaError as error:
        raise click.ClickException(str(error)) from None
    runs = sqlite_store.row_counts(path).get("runs", 0)
    click.echo(f"repaired {path}: schema current, {runs} runs kept; backup in {backup}")
