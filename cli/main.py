"""Entry point of the `zenml-mlflow` command line."""

import click

from cli.check import check
from cli.install import install
from cli.migrate import migrate
from cli.runs import runs
from cli.server import server
from cli.store import store
from cli.ui import ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Set up and operate the mlflow_plus MLflow experiment tracker for ZenML."""


cli.add_command(install)
cli.add_command(server)
cli.add_command(check)
cli.add_command(ui)
cli.add_command(runs)
cli.add_command(migrate)
cli.add_command(store)

if __name__ == "__main__":
    cli()
