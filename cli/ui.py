"""`zenml-mlflow ui`: the MLflow UI on the store a tracker writes to, where step links point."""

import os
from urllib.parse import urlsplit

import click

from tracker_flavor.config.uris import DEFAULT_UI_URL

from .components import load_tracker
from .server import (
    check_port_free,
    jobs_option,
    server_command,
    server_environment,
)


def links_address(ui_url: str | None) -> tuple[str, int]:
    """Return the host and port that step links of a local store point at (the tracker's ui_url)."""
    parts = urlsplit(ui_url or DEFAULT_UI_URL)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.hostname or "127.0.0.1", parts.port or default_port


@click.command()
@click.argument("component", required=False)
@click.option(
    "--port",
    type=int,
    help="Port to serve on (default: the port of the step links, the tracker's ui_url). "
    "Another port serves the links recorded while ui_url pointed there.",
)
@jobs_option
@click.option(
    "--print-command", is_flag=True, help="Print the server command instead of running it."
)
def ui(component: str | None, port: int | None, jobs: bool, print_command: bool) -> None:
    """Open the MLflow UI on a tracker's local store, at the address its step links use.

    To serve on another port, set the tracker's ui_url to it (links of later runs follow):
    zenml experiment-tracker update NAME --ui_url=http://127.0.0.1:PORT. Links of earlier runs
    keep the old port: serve them with --port OLD_PORT.

    Example: zenml-mlflow ui   # the active stack's tracker, at the step links' port
    """
    tracker = load_tracker(component)
    connection = tracker.connection()  # waits while a pipeline creates the embedded store
    uri = connection.uri
    if connection.is_remote:
        raise click.ClickException(
            f"tracker {tracker.name!r} logs to {connection.shown}, which serves its own UI: "
            "open that, or the link in a step's experiment_tracker_url metadata."
        )
    host, links_port = links_address(connection.ui_url)
    port = links_port if port is None else port
    command = server_command(host, port, uri)
    if print_command:
        click.echo(" ".join(command))
        return
    check_port_free(
        host,
        port,
        "stop what listens there, or serve elsewhere: "
        f"zenml experiment-tracker update {tracker.name} --ui_url=http://{host}:PORT "
        "(links of later runs follow), then run `zenml-mlflow ui`.",
    )
    if port != links_port:
        click.echo(
            f"note: the step links of tracker {tracker.name!r} point at port {links_port} (its "
            f"ui_url); port {port} serves the links recorded while ui_url pointed there.",
            err=True,
        )
    click.echo(f"MLflow UI for {connection.shown} on http://{host}:{port} (Ctrl+C to stop)")
    os.execve(command[0], command, server_environment(jobs))
