"""`zenml-mlflow push`: copy the embedded store's experiments and runs to a tracking server."""

import shlex
from typing import TYPE_CHECKING

import click

from tracker_flavor.config.uris import is_http_uri
from tracker_flavor.mlflow.errors import TrackingServerError

from .components import load_tracker

if TYPE_CHECKING:
    from tracker_flavor.mlflow.connection import Connection

SECRET_NAME = "mlflow_server"
"""The ZenML secret the printed command refers to when credentials were given as values."""


def target_connection(
    uri: str,
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure_tls: bool,
) -> "Connection":
    """Return the connection to the target server, validated as a tracker config would be."""
    from pydantic import ValidationError

    from tracker_flavor.config.component import MLflowPlusConfig
    from tracker_flavor.config.secrets import SecretReferenceError
    from tracker_flavor.mlflow.connection import connect
    from tracker_flavor.runtime import runtime

    if not is_http_uri(uri):
        raise click.BadParameter(
            "give the tracking server's http(s)://HOST:PORT; push copies into a tracking server.",
            param_hint="--to",
        )
    try:
        config = MLflowPlusConfig.model_validate(
            {
                "tracking_uri": uri,
                "tracking_username": username,
                "tracking_password": password,
                "tracking_token": token,
                "tracking_ca_bundle": ca_bundle,
                "tracking_insecure_tls": insecure_tls,
            }
        )
        return connect(config, runtime.mlflow.stores, uri)
    except ValidationError as error:
        raise click.ClickException(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        ) from None
    except (SecretReferenceError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None


def update_command(
    tracker: str,
    uri: str,
    credentials: dict[str, str | None],
    ca_bundle: str | None,
    insecure_tls: bool,
) -> tuple[str, str | None]:
    """Return the command that points the tracker at the server, and the secret it needs first.

    Credentials never appear: references to ZenML secrets stay references, values are replaced
    by references to a secret the second line creates (with placeholders).
    """
    from zenml.utils.secret_utils import is_secret_reference

    options = [f"--tracking_uri={uri}"]
    create = []
    for key, value in credentials.items():
        if not value:
            continue
        if is_secret_reference(value):
            options.append(f"--tracking_{key}={value}")
        else:
            options.append(f"--tracking_{key}={{{{{SECRET_NAME}.{key}}}}}")
            create.append(f"--{key}=...")
    if ca_bundle:
        options.append(f"--tracking_ca_bundle={ca_bundle}")
    if insecure_tls:
        options.append("--tracking_insecure_tls=True")
    command = shlex.join(["zenml", "experiment-tracker", "update", tracker, *options])
    secret = shlex.join(["zenml", "secret", "create", SECRET_NAME, *create]) if create else None
    return command, secret


@click.command()
@click.option(
    "--to",
    "target_uri",
    required=True,
    metavar="URI",
    help="The tracking server, http(s)://HOST:PORT.",
)
@click.option(
    "--tracker",
    "tracker_name",
    help="The mlflow_plus tracker whose local store is copied. Default: the active stack's.",
)
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    help="Copy only this experiment; repeat the option. Default: every active experiment.",
)
@click.option(
    "--username",
    envvar="MLFLOW_TRACKING_USERNAME",
    help="Basic-auth user of the server, or a {{secret.key}} reference.",
)
@click.option(
    "--password",
    envvar="MLFLOW_TRACKING_PASSWORD",
    help="Basic-auth password, or a {{secret.key}} reference (prefer the variable or a "
    "reference: an option's value shows in the process list).",
)
@click.option(
    "--token",
    envvar="MLFLOW_TRACKING_TOKEN",
    help="Bearer token of the server, or a {{secret.key}} reference.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle (PEM) to verify the server's certificate with.",
)
@click.option("--insecure-tls", is_flag=True, help="Skip TLS certificate verification.")
def push(
    target_uri: str,
    tracker_name: str | None,
    experiments: tuple[str, ...],
    username: str | None,
    password: str | None,
    token: str | None,
    ca_bundle: str | None,
    insecure_tls: bool,
) -> None:
    """Copy the local store's experiments and runs to a tracking server, and relink ZenML's runs.

    Copies params, tags, full metric histories, datasets, artifacts, statuses, start and end
    times, and parent/child links; then records links to the copies on the ZenML pipeline and
    step runs. Exactly once: pushing again copies nothing twice, and a push that was interrupted
    is completed by the next one. Prints the command that points the tracker at the server.

    Example: zenml-mlflow push --to https://mlflow.example.com --username alice
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from rich.progress import Progress

    from tracker_flavor.delivery.push import Push, relink
    from tracker_flavor.runs import steps
    from tracker_flavor.runtime import runtime

    tracker = load_tracker(tracker_name)
    source = tracker.connection()
    if source.is_remote:
        raise click.ClickException(
            f"tracker {tracker.name!r} logs to {source.shown}, not to a local store: push copies "
            "the embedded (or another local) store."
        )
    target = target_connection(target_uri, username, password, token, ca_bundle, insecure_tls)
    runtime.mlflow.environment.enter(target)
    try:
        with steps.client(target, runtime.mlflow) as client:
            job = Push(MlflowClient(source.uri), client)
            try:
                chosen = job.experiments(experiments)
                with Progress(transient=True) as progress:
                    task = progress.add_task("Pushing", total=None)
                    summary = job.run(
                        chosen, lambda name: progress.update(task, description=f"Run {name}")
                    )
            except ValueError as error:  # an unknown or a deleted experiment
                raise click.ClickException(str(error)) from None
            summary.relinked = relink(
                summary.pipeline_runs, source.shown, target, tracker.id, summary.moved
            )
    except (TrackingServerError, MlflowException) as error:
        raise click.ClickException(
            f"{error} Run the same push again: it completes what this one began."
        ) from None
    finally:
        runtime.mlflow.environment.leave(target)
    click.echo(
        f"Pushed {summary.experiments} experiment(s) from {source.shown} to {target.shown}: "
        f"{summary.copied} run(s) copied, {summary.finished} completed, {summary.present} "
        f"already there; {summary.points} metric point(s), {summary.artifacts} artifact "
        f"file(s); {summary.relinked} ZenML run/step link(s) updated."
    )
    if summary.strays:
        click.echo(f"deleted {summary.strays} duplicate copy(ies) an earlier push left")
    for run_id in summary.orphans:
        click.echo(f"run {run_id}: its parent run was not pushed, so its copy is not nested")
    if summary.running:
        click.echo(
            f"{len(summary.running)} run(s) still running locally ({', '.join(summary.running)}): "
            "push again once they ended to complete their copies."
        )
    credentials = {"username": username, "password": password, "token": token}
    command, secret = update_command(
        tracker.name, target.shown, credentials, ca_bundle, insecure_tls
    )
    click.echo("Point the tracker at the server:")
    if secret is not None:
        click.echo(f"  {secret}")
    click.echo(f"  {command}")
