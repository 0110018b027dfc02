"""Entry point of the `zenml-mlflow` command line."""

import click

from cli.install import install
from cli.ui import ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Set up and operate the mlflow_plus MLflow experiment tracker for ZenML."""


cli.add_command(install)
cli.add_command(ui)

if __name__ == "__main__":
    cli()
