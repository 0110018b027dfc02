"""`zenml-mlflow open`: the MLflow link of a ZenML pipeline run or step, printed or opened."""

from typing import TYPE_CHECKING

import click

from tracker_flavor.config.uris import is_remote_uri

if TYPE_CHECKING:
    from zenml.models import PipelineRunResponse, StepRunResponse


def _pipeline_run(name_or_id: str) -> "PipelineRunResponse":
    """Return the ZenML pipeline run of this name or id; a click error otherwise."""
    from zenml.client import Client

    try:
        return Client().get_pipeline_run(name_or_id, allow_name_prefix_match=False)
    except KeyError:
        raise click.ClickException(
            f"no pipeline run named {name_or_id!r}: `zenml-mlflow runs` lists the recent ones."
        ) from None


def _step_run(pipeline_run: "PipelineRunResponse", step: str) -> "StepRunResponse":
    """Return the run of a step; for a cached step, the run it reused, which logged to MLflow."""
    from zenml.client import Client

    if step not in pipeline_run.steps:
        raise click.ClickException(
            f"pipeline run {pipeline_run.name!r} has no step {step!r}; its steps: "
            + ", ".join(sorted(pipeline_run.steps))
            + "."
        )
    step_run = pipeline_run.steps[step]
    if step_run.original_step_run_id:
        return Client().get_run_step(step_run.original_step_run_id)
    return step_run


@click.command(name="open")
@click.argument("run")
@click.argument("step", required=False)
@click.option(
    "--browser", "-b", is_flag=True, help="Also open the link in the default web browser."
)
def open_link(run: str, step: str | None, browser: bool) -> None:
    """Print the MLflow link of a ZenML pipeline run (its parent run) or of one of its steps.

    RUN is the run's name or id. The link is the run's or step's experiment_tracker_url metadata;
    a link to a local store opens where `zenml-mlflow ui` serves it.

    Example: zenml-mlflow open linear-2026_12_06-04_39_08 train --browser
    """
    from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

    from tracker_flavor.runs.metadata import TRACKING_URI_KEY

    pipeline_run = _pipeline_run(run)
    metadata = (_step_run(pipeline_run, step) if step else pipeline_run).run_metadata
    link = metadata.get(METADATA_EXPERIMENT_TRACKER_URL)
    if not link:
        what = (
            f"step {step!r} of pipeline run {pipeline_run.name!r}"
            if step
            else (f"pipeline run {pipeline_run.name!r}")
        )
        raise click.ClickException(
            f"{what} has no MLflow link: it ran without an mlflow_plus tracker, has not "
            "logged yet, or waits for a tracking server that was down (`zenml-mlflow sync`)."
        )
    click.echo(str(link))
    uri = metadata.get(TRACKING_URI_KEY)
    if isinstance(uri, str) and not is_remote_uri(uri):
        click.echo("a local store: `zenml-mlflow ui` serves this link", err=True)
    if browser and click.launch(str(link), wait=True) != 0:
        raise click.ClickException("no web browser could be started: open the link above.")
