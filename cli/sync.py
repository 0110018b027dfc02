"""`zenml-mlflow sync`: deliver what steps spooled while the tracking server was down."""

import click

from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.delivery.lease import LeaseLost
from tracker_flavor.delivery.spool import RunReport, Summary
from tracker_flavor.mlflow.errors import TrackingServerError

from .components import load_tracker

EXIT_SERVER = 3
"""The tracking server is down or refuses, or the spool was written for another server."""
EXIT_UNDELIVERED = 4
"""Some values could not be delivered (a step's error, damaged segments set aside); the rest was."""
EXIT_BUSY = 5
"""Another process holds the lease of a run's spool and delivers it; the rest was delivered."""
EXIT_STORE = 6
"""The artifact store holding the spool could not be read or written."""


class SyncError(click.ClickException):
    """A one-line reason with its documented exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(redact_credentials(message))
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance


def _line(report: RunReport, dry_run: bool) -> str:
    """Return one run's account in one line."""
    if report.busy:
        return f"Run {report.run}: being delivered by {report.busy}; left to it."
    line = f"Run {report.run}: spooled {report.spooled}"
    if not dry_run:
        line += f", delivered {report.delivered}"
    line += f", quarantined {report.quarantined} damaged segment(s)"
    if report.skipped:
        line += f", skipped {report.skipped} invalid value(s)"
    return line + "."


@click.command()
@click.option("--run", "run_id", help="Deliver only the spool of this ZenML pipeline run (id).")
@click.option("--dry-run", is_flag=True, help="Count what is spooled; deliver nothing.")
def sync(run_id: str | None, dry_run: bool) -> None:
    """Deliver every spooled pipeline run of the active stack's tracker to its MLflow server.

    Steps spool what they log when the server is down (on_tracking_outage: spool). Delivery is
    exactly-once: one process at a time delivers a run (a lease in the artifact store), runs are
    found by their ZenML tags, each metric batch is acknowledged in the spool once the server
    confirmed it and checked against the run's history when it was not, and an interrupted sync
    can simply be run again. Exit codes: 0 all delivered, 1 nothing spooled for --run or an
    unexpected error, 3 the server is down or refuses, 4 some values could not be delivered
    (damaged segments set aside, a step's error), 5 another sync delivers a run, 6 the artifact
    store cannot be read or written.

    Example: zenml-mlflow sync --dry-run
    """
    try:
        total = _sync(run_id, dry_run)
    except click.ClickException:
        raise
    except OSError as error:
        raise SyncError(f"the spool's artifact store failed: {error}", EXIT_STORE) from None
    except Exception as error:  # one line, never a traceback
        raise SyncError(f"sync failed: {type(error).__name__}: {error}", 1) from None
    if total is None or dry_run:
        return
    problems = [(r.run, problem) for r in total.reports for problem in r.problems]
    for run, problem in problems:
        click.echo(f"Run {run}: not delivered: {problem}", err=True)
    if problems or any(r.quarantined or r.skipped for r in total.reports):
        raise SyncError("some spooled values could not be delivered (see above)", EXIT_UNDELIVERED)
    if any(r.busy for r in total.reports):
        raise SyncError("another process delivers some runs; run sync again later", EXIT_BUSY)


def _sync(run_id: str | None, dry_run: bool) -> Summary | None:
    """Deliver (or count) the spooled runs; print one line per run and a summary."""
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
        return None
    counted = {
        run: sum(
            spool.points(operation)
            for journal in spool.step_journals(root, run)
            for _, operation in journal.operations()
        )
        for run in pending
    }
    publish = tracker.publisher_for(connection)
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
                                publish=publish,
                                progress=lambda done: progress.advance(task, done),
                            )  # fmt: skip
                        )
                except (TrackingServerError, catchup.SpoolError) as error:
                    raise SyncError(str(error), EXIT_SERVER) from None
                except LeaseLost as error:
                    raise SyncError(f"run {run}: {error}", EXIT_BUSY) from None
    finally:
        runtime.mlflow.environment.leave(connection)
    for report in total.reports:
        click.echo(_line(report, dry_run))
    verb = "Would deliver" if dry_run else "Delivered"
    click.echo(
        f"{verb} {total.runs} run(s), {total.steps} step(s), {total.points} point(s), "
        f"{total.bytes} bytes to {connection.shown}."
    )
    return total
