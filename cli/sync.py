"""`zenml-mlflow sync`: deliver what steps spooled while the tracking server was down."""

import click

from tracker_flavor.delivery.spool import Summary
from tracker_flavor.mlflow.errors import TrackingServerError

from .components import load_tracker


@click.command()
@click.option("--run", "run_id", help="Deliver only the spool of this ZenML pipeline run (id).")
@click.option("--dry-run", is_flag=True, help="Count what is spooled; deliver nothing.")
def sync(run_id: str | None, dry_run: bool) -> None:
    """Deliver every spooled pipeline run of the active stack's tracker to its MLflow server.

    Steps spool what they log when the server is down (on_tracking_outage: spool). Delivery is
    exactly-once: runs are found by their ZenML tags, each metric batch is acknowledged in the
    spool once the server confirmed it, and an interrupted sync can simply be run again.

    Example: zenml-mlflow sync --dry-run
    """
    from rich.progress import Progress

    from tracker_flavor.delivery import catchup, spool
    from tracker_flavor.runs import steps
    from tracker_flavor.runtime import runtime

    tracker = load_tracker(None)
    connection = tracker.connection()
    root = spool.active_root(connection.shown)
    pending = spool.spooled_runs(root)
    if run_id is not None:
        if run_id not in pending:
            raise click.ClickException(f"ZenML run {run_id} has nothing spooled in {root}.")
        pending = [run_id]
    total = Summary()
    if not pending:
        click.echo(f"Nothing spooled in {root}.")
        return
    counted = {
        run: sum(
            spool.points(operation)
            for journal in spool.step_journals(root, run)
            for _, operation in journal.operations()
        )
        for run in pending
    }
    runtime.mlflow.environment.enter(connection)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("Delivering", total=sum(counted.values()))
            for run in pending:
                progress.update(task, description=f"Run {run}")
                try:
                    with steps.client(connection, runtime.mlflow, tracker.config) as mlflow:
                        total.add(
                            catchup.deliver_run(
                                mlflow,
                                connection,
                                root,
                                run,
                                tracker.id,
                                runtime.runs,
                                dry_run=dry_run,
                                progress=lambda done: progress.advance(task, done),
                            )
                        )
                except (TrackingServerError, catchup.SpoolError) as error:
                    raise click.ClickException(str(error)) from None
    finally:
        runtime.mlflow.environment.leave(connection)
    verb = "Would deliver" if dry_run else "Delivered"
    click.echo(
        f"{verb} {total.runs} run(s), {total.steps} step(s), {total.points} point(s), "
        f"{total.bytes} bytes to {connection.shown}."
    )
