"""Entry point of the `zenml-mlflow` command line."""

from typing import Any

import click
from pydantic import ValidationError

from tracker_flavor.mlflow.sqlite_store import StoreSchemaError

from .check import check
from .install import install
from .links import open_link
from .migrate import migrate
from .output import error_message
from .push import push
from .runs import runs
from .server import server
from .store import store
from .sync import sync
from .ui import ui

DISTRIBUTION = "zenml-mlflow-tracker"
"""The package's name on PyPI: its version (pyproject.toml, the one place) is the CLI's."""


class Commands(click.Group):
    """The command group: a store to repair or a value pydantic refused fails with its reason."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn a StoreSchemaError or ValidationError into a click error."""
        try:
            return super().invoke(ctx)
        except (StoreSchemaError, ValidationError) as error:
            raise click.ClickException(error_message(error)) from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="zenml-mlflow")
def cli() -> None:
    """Set up and operate the mlflow_plus MLflow experiment tracker for ZenML."""


cli.add_command(install)
cli.add_command(server)
cli.add_command(check)
cli.add_command(ui)
cli.add_command(runs)
cli.add_command(open_link)
cli.add_command(migrate)
cli.add_command(store)
cli.add_command(sync)
cli.add_command(push)

if __name__ == "__main__":
    cli()
