"""Entry point of the `zenml-mlflow` command line."""

from typing import Any

import click

from cli.check import check
from cli.install import install
from cli.migrate import migrate
from cli.runs import runs
from cli.server import server
from cli.store import store
from cli.sync import sync
from cli.ui import ui
from tracker_flavor.sqlite_store import StoreSchemaError


class Commands(click.Group):
    """The command group; a local store that needs a repair fails any command with one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn a StoreSchemaError into a one-line click error."""
        try:
            return super().invoke(ctx)
        except StoreSchemaError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Set up and operate the mlflow_plus MLflow experiment tracker for ZenML."""


cli.add_command(install)
cli.add_command(server)
cli.add_command(check)
cli.add_command(ui)
cli.add_command(runs)
cli.add_command(migrate)
cli.add_command(store)
cli.add_command(sync)

if __name__ == "__main__":
    cli()
