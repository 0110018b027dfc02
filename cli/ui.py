"""`zenml-mlflow ui`: the MLflow UI on the store a tracker writes to, where step links point."""

import os
import sys
from urllib.parse import urlsplit

import click

from cli.components import load_tracker
from tracker_flavor.uris import DEFAULT_UI_URL, is_remote_uri, strip_credentials


def ui_command(tracking_uri: str, ui_url: str | None, port: int | None) -> list[str]:
    """Return the `mlflow server` command that serves `tracking_uri` at the step links' port."""
    parts = urlsplit(ui_url or DEFAULT_UI_URL)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(port or parts.port or 5000),
        "--workers",
        "1",
    ]


@click.command()
@click.argument("component", required=False)
@click.option("--port", type=int, help="Port to serve on (default: the port of the step links).")
@click.option(
    "--print-command", is_flag=True, help="Print the server command instead of running it."
)
def ui(component: str | None, port: int | None, print_command: bool) -> None:
    """Open the MLflow UI on a tracker's local store, at the address its step links use.

    Example: zenml-mlflow ui   # the active stack's tracker, at the step links' port
    """
    tracker = load_tracker(component)
    uri = tracker.tracking_uri()
    if is_remote_uri(uri):
        raise click.ClickException(
            f"tracker {tracker.name!r} logs to {strip_credentials(uri)}, which serves its own UI: "
            "open that, or the link in a step's experiment_tracker_url metadata."
        )
    command = ui_command(uri, tracker.config.ui_url, port)
    if print_command:
        click.echo(" ".join(command))
        return
    address = f"http://{command[6]}:{command[8]}"
    click.echo(f"MLflow UI for {strip_credentials(uri)} on {address} (Ctrl+C to stop)")
    os.execv(command[0], command)
