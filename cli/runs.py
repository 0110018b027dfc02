"""`zenml-mlflow runs`: recent ZenML pipeline runs next to their MLflow parent runs."""

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import click

from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow.errors import explain

from .components import load_tracker
from .output import output_option, print_json, print_table

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from zenml.models import PipelineRunResponse

    from tracker_flavor.tracker import MLflowPlusExperimentTracker

MAX_METRICS = 3


@dataclass
class RunRow:
    """One ZenML pipeline run and what MLflow has about it."""

    run: str
    pipeline: str
    created: str
    zenml_status: str
    mlflow_status: str = "-"
    failed_step: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    link: str = ""
    repaired: list[str] = field(default_factory=list)


def _metrics(client: "MlflowClient", parent: "Run", names: tuple[str, ...]) -> dict[str, float]:
    """Return the chosen metrics of a parent run, or of its child runs in nested mode."""
    from tracker_flavor.runs.mlflow_runs import child_runs

    found = {name: parent.data.metrics[name] for name in names if name in parent.data.metrics}
    if len(found) < len(names):
        for child in child_runs(client, parent.info.experiment_id, parent.info.run_id):
            for name in names:
                if name in child.data.metrics:
                    found.setdefault(name, child.data.metrics[name])
    return found


def describe(
    pipeline_run: "PipelineRunResponse",
    tracker: "MLflowPlusExperimentTracker | None",
    metrics: tuple[str, ...],
    repair: bool,
) -> RunRow:
    """Return the row of one ZenML run, repairing MLflow statuses first if asked to."""
    from mlflow import MlflowClient
    from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

    from tracker_flavor.runs import reconcile
    from tracker_flavor.runs.metadata import TRACKING_URI_KEY
    from tracker_flavor.runs.outcome import first_failed_step
    from tracker_flavor.runtime import runtime

    row = RunRow(
        run=pipeline_run.name,
        pipeline=pipeline_run.pipeline.name if pipeline_run.pipeline else "",
        created=pipeline_run.created.strftime("%Y-%m-%d %H:%M:%S"),
        zenml_status=pipeline_run.status.value,
        failed_step=(pipeline_run.status == "failed" and first_failed_step(pipeline_run.id)) or "",
        metrics=dict.fromkeys(metrics),
    )
    metadata = pipeline_run.run_metadata
    uri = metadata.get(TRACKING_URI_KEY)
    if tracker is None or not isinstance(uri, str):
        return row
    row.link = str(metadata.get(METADATA_EXPERIMENT_TRACKER_URL, ""))
    connection = tracker.connection(uri)
    runtime.mlflow.environment.enter(connection)
    try:
        client = MlflowClient(tracking_uri=uri)
        parent_id = reconcile.parent_run_id(pipeline_run, client)
        if parent_id is None:
            return row
        if repair:
            for fixed in reconcile.reconcile_run(pipeline_run, client):
                row.repaired.append(
                    f"{fixed.name} ({fixed.run_id}): {fixed.before} -> {fixed.after}"
                )
        parent = client.get_run(parent_id)
        row.mlflow_status = parent.info.status
        if metrics:
            row.metrics.update(_metrics(client, parent, metrics))
    except Exception as error:
        row.mlflow_status = "unreachable"
        reason = explain(error, uri) or redact_credentials(str(error))
        click.echo(f"warning: run {pipeline_run.name}: {reason}", err=True)
    finally:
        runtime.mlflow.environment.leave(connection)
    return row


def run_tracker(pipeline_run: "PipelineRunResponse") -> "MLflowPlusExperimentTracker | None":
    """Return the mlflow_plus tracker of the stack the run ran on, if it still exists."""
    from zenml.enums import StackComponentType

    stack = pipeline_run.stack
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER) if stack else None
    if not trackers:
        return None
    try:
        return load_tracker(trackers[0].name)
    except click.ClickException:
        return None


@click.command()
@click.argument("pipeline", required=False)
@click.option(
    "--last", "-n", default=10, show_default=True, type=click.IntRange(min=1), help="How many runs."
)
@click.option(
    "--metric",
    "-m",
    "metrics",
    multiple=True,
    help=f"A metric to show (latest value), up to {MAX_METRICS}; repeat the option.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Set the MLflow runs of finished ZenML runs to the status ZenML recorded.",
)
@output_option
def runs(
    pipeline: str | None, last: int, metrics: tuple[str, ...], repair: bool, output: str
) -> None:
    """List recent pipeline runs with their MLflow run link and status in both systems.

    Example: zenml-mlflow runs quickstart --last 5 -m test_accuracy --repair
    """
    from zenml.client import Client

    if len(metrics) > MAX_METRICS:
        raise click.BadParameter(f"at most {MAX_METRICS} metrics", param_hint="--metric")
    page = Client().list_pipeline_runs(
        sort_by="desc:created",
        size=last,
        pipeline_name=pipeline,
        hydrate=True,
    )
    trackers: dict[str, MLflowPlusExperimentTracker | None] = {}
    rows = []
    for pipeline_run in page.items:
        key = str(pipeline_run.stack.id) if pipeline_run.stack else ""
        if key not in trackers:
            trackers[key] = run_tracker(pipeline_run)
        rows.append(describe(pipeline_run, trackers[key], metrics, repair))
    if output == "json":
        print_json([asdict(row) for row in rows])
        return
    if not rows:
        click.echo("no pipeline runs" + (f" of {pipeline!r}" if pipeline else ""))
        return
    print_table(
        ["run", "pipeline", "created", "ZenML", "MLflow", "failed step", *metrics, "MLflow run"],
        [
            [
                row.run,
                row.pipeline,
                row.created,
                row.zenml_status,
                row.mlflow_status,
                row.failed_step,
                *("-" if v is None else f"{v:.4g}" for v in row.metrics.values()),
                row.link,
            ]
            for row in rows
        ],
    )
    if repair:
        _report_repairs(rows)


def _report_repairs(rows: list[RunRow]) -> None:
    """Print what --repair changed, that nothing needed it, and the runs it had to leave."""
    from zenml.enums import ExecutionStatus

    for row in rows:
        for line in row.repaired:
            click.echo(f"repaired {row.run}: {line}")
    if not any(row.repaired for row in rows):
        click.echo("nothing to repair: MLflow has the status ZenML recorded for every run shown")
    for row in rows:
        if not ExecutionStatus(row.zenml_status).is_finished:
            click.echo(
                f"left {row.run}: ZenML says it is {row.zenml_status}; --repair settles only "
                "finished runs (a killed process: see Troubleshooting)"
            )
