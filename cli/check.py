"""`zenml-mlflow check`: tell whether a tracker component can reach and use its MLflow store."""

import queue
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from tracker_flavor.config.uris import redact_credentials
from tracker_flavor.mlflow.errors import explain

from .components import load_tracker
from .output import output_option, print_json

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.tracker import MLflowPlusExperimentTracker

PROBE_EXPERIMENT = "zenml-mlflow-check"
PROBE_RUN = "probe"
PROBE_ATTEMPTS = 3


@dataclass(frozen=True)
class Result:
    """The outcome of one check: a one-line message, with the fix when it failed."""

    name: str
    ok: bool
    message: str


class Deadline:
    """The time left for the checks, and the check under way."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.current = "secrets"

    def left(self) -> float:
        """Return the seconds left, at least a tenth of one."""
        return max(self.end - time.monotonic(), 0.1)


def _failure(error: BaseException, uri: str, tracker: "MLflowPlusExperimentTracker") -> str:
    """Return the one-line explanation of a failed check."""
    return explain(error, uri, tracker.config) or _first_line(error)


def _first_line(error: BaseException) -> str:
    """Return the first line of an error's message, without credentials in URIs."""
    return redact_credentials(str(error)).strip().splitlines()[0]


def _timed(action: Callable[[], object]) -> float:
    """Run `action` and return how long it took, in milliseconds."""
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _server_checks(
    connection: "Connection", tracker: "MLflowPlusExperimentTracker", deadline: Deadline
) -> Iterator[Result]:
    """Check that the server's host accepts connections, its TLS and, for MLflow, /health."""
    import requests

    uri, base = connection.uri, connection.server
    parts = urlsplit(base)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    deadline.current = "connect"
    try:
        with socket.create_connection((host, port), timeout=deadline.left()):
            pass
    except OSError as error:
        yield Result("connect", False, _failure(error, uri, tracker))
        return
    yield Result("connect", True, f"{host}:{port} accepts connections")
    options = connection.request_options()
    tls = {"verify": options["verify"], "cert": options["cert"]}
    probe = "/health" if connection.kind == "http" else "/"
    deadline.current = "tls" if parts.scheme == "https" else "server"
    try:
        start = time.perf_counter()
        response = requests.get(f"{base.rstrip('/')}{probe}", timeout=deadline.left(), **tls)
        latency = (time.perf_counter() - start) * 1000
    except requests.RequestException as error:
        yield Result(deadline.current, False, _failure(error, uri, tracker))
        return
    if parts.scheme == "https":
        yield Result(
            "tls",
            True,
            "certificate NOT verified (tracking_insecure_tls=True)"
            if connection.insecure_tls
            else f"certificate of {host} verified",
        )
    if connection.kind != "http":
        return
    deadline.current = "server"
    if response.status_code != 200:
        yield Result(
            "server",
            False,
            f"{connection.shown} answered /health with HTTP {response.status_code}: "
            "it is not an MLflow tracking server, or it is unhealthy (see its log).",
        )
        return
    version = requests.get(f"{base.rstrip('/')}/version", timeout=deadline.left(), **options)
    served = f"MLflow {version.text.strip()}" if version.ok else "an MLflow server"
    yield Result("server", True, f"{served}, /health answered in {latency:.0f} ms")


def _store_checks(
    connection: "Connection", tracker: "MLflowPlusExperimentTracker", deadline: Deadline
) -> Iterator[Result]:
    """Authenticate to the store, then log to the probe run (created once, then reused)."""
    from mlflow import MlflowClient

    from tracker_flavor.config.limits import RequestLimits
    from tracker_flavor.runtime import runtime

    uri = connection.uri
    bounded = replace(connection, limits=RequestLimits(max(int(deadline.left()), 1), 0))
    runtime.mlflow.environment.enter(bounded)
    try:
        client = MlflowClient(tracking_uri=uri)
        deadline.current = "auth"
        try:
            client.search_experiments(max_results=1)
        except Exception as error:
            yield Result("auth", False, _failure(error, uri, tracker))
            return
        methods = tracker.config.authentication_methods()
        yield Result(
            "auth",
            True,
            f"accepted {methods[0]}" if methods else "the store answers without credentials",
        )
        deadline.current = "probe"
        name = connection.experiment_name(PROBE_EXPERIMENT)
        try:
            exp_id, latencies = _log_probe(client, name, connection.artifact_location)
        except Exception as error:
            yield Result("probe", False, _failure(error, uri, tracker))
            return
        hidden = _hide(client, exp_id)
        yield Result(
            "probe",
            True,
            f"logged to run {PROBE_RUN!r} of experiment {name!r}, kept for the next check"
            + (" and hidden from the experiment list" if hidden else "")
            + f" (round trip {statistics.median(latencies):.0f} ms)",
        )
    finally:
        runtime.mlflow.environment.leave(bounded)


def _log_probe(
    client: "MlflowClient", name: str, artifact_location: str | None
) -> tuple[str, list[float]]:
    """Log a value to the probe run; return its experiment's id and the round trips' latencies.

    Reusing one run leaves no trail of deleted runs: MLflow's REST API cannot erase a run for
    good, and a check that did not write could not tell a read-only store from a usable one.
    The experiment is restored for the probe and deleted again after it (its runs with it).
    """
    from mlflow.exceptions import MlflowException

    from tracker_flavor.runs import mlflow_runs as runs

    attempt = 1
    while True:
        start = time.perf_counter()
        experiment = client.get_experiment_by_name(name)
        latency = (time.perf_counter() - start) * 1000
        try:
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                _restore(client, experiment.experiment_id)
            exp_id = runs.experiment_id(client, name, artifact_location)
            run_id = _kept_run(client, exp_id) or _new_run(client, exp_id)
            return exp_id, [
                latency,
                _timed(partial(client.log_metric, run_id, PROBE_RUN, 1.0)),
                _timed(partial(client.get_run, run_id)),
            ]
        except (MlflowException, ValueError):
            # A check at the same time deleted the experiment again between two calls.
            again = client.get_experiment_by_name(name)
            if attempt == PROBE_ATTEMPTS or again is None or again.lifecycle_stage != "deleted":
                raise
            attempt += 1


def _new_run(client: "MlflowClient", exp_id: str) -> str:
    """Create the finished probe run and return its id."""
    run_id: str = client.create_run(exp_id, run_name=PROBE_RUN).info.run_id
    client.set_terminated(run_id)
    return run_id


def _kept_run(client: "MlflowClient", exp_id: str) -> str | None:
    """Return the id of the experiment's first probe run, if there is one."""
    kept = client.search_runs(
        [exp_id],
        filter_string=f"attributes.run_name = '{PROBE_RUN}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    return kept[0].info.run_id if kept else None


def _restore(client: "MlflowClient", exp_id: str) -> None:
    """Restore the deleted probe experiment and its run, unless a check at the same time did."""
    from mlflow.exceptions import MlflowException

    try:
        client.restore_experiment(exp_id)
    except MlflowException:
        if client.get_experiment(exp_id).lifecycle_stage == "deleted":
            raise


def _hide(client: "MlflowClient", exp_id: str) -> bool:
    """Soft-delete the probe experiment, hiding it from MLflow's list; False if not allowed."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_experiment(exp_id)
    except MlflowException:
        # Deleted already (a check at the same time), or not allowed.
        return client.get_experiment(exp_id).lifecycle_stage == "deleted"
    return True


def diagnose(tracker: "MLflowPlusExperimentTracker", deadline: Deadline) -> Iterator[Result]:
    """Run the checks in order, stopping at the first failure."""
    from zenml.utils.secret_utils import is_secret_reference

    try:
        connection = tracker.connection()
    except Exception as error:
        yield Result("secrets", False, str(error))
        return
    references = [value for value in tracker.config.__dict__.values() if is_secret_reference(value)]
    yield Result(
        "secrets",
        True,
        f"{len(references)} secret reference(s) resolved" if references else "none referenced",
    )
    if connection.is_remote:
        for result in _server_checks(connection, tracker, deadline):
            yield result
            if not result.ok:
                return
    yield from _store_checks(connection, tracker, deadline)


def run_checks(tracker: "MLflowPlusExperimentTracker", seconds: float) -> Iterator[Result]:
    """Yield check results as they come; give up with a failed result after `seconds`."""
    deadline = Deadline(seconds)
    results: queue.Queue[Result | None] = queue.Queue()

    def work() -> None:
        try:
            for result in diagnose(tracker, deadline):
                results.put(result)
        except Exception as error:
            results.put(Result(deadline.current, False, _first_line(error)))
        results.put(None)

    # A daemon thread: a server that hangs cannot keep the command past its deadline.
    threading.Thread(target=work, name="zenml-mlflow-check", daemon=True).start()
    while True:
        try:
            result = results.get(timeout=max(deadline.end - time.monotonic(), 0))
        except queue.Empty:
            yield Result(
                deadline.current,
                False,
                f"no answer within --timeout {seconds:g} s: the server accepts connections but "
                "does not respond; check the address, a proxy or firewall on the way, and the "
                "server's log.",
            )
            return
        if result is None:
            return
        yield result


@click.command()
@click.argument("component", required=False)
@click.option(
    "--timeout",
    default=15.0,
    show_default=True,
    type=float,
    help="Seconds all the checks may take together.",
)
@output_option
def check(component: str | None, timeout: float, output: str) -> None:
    """Check that a tracker can reach, authenticate to and write to its MLflow store.

    Checks secrets, connection, TLS, server version, authentication and a probe: a value logged
    to the run `probe` of experiment zenml-mlflow-check, created once and reused; the experiment
    is kept deleted, so MLflow's experiment list does not show it. Exit code 0 only if the tracker
    is usable.

    Example: zenml-mlflow check mlflow_plus --timeout 30
    """
    tracker = load_tracker(component)
    results = []
    for result in run_checks(tracker, timeout):
        results.append(result)
        if output == "table":
            mark = click.style("✓", fg="green") if result.ok else click.style("✗", fg="red")
            click.echo(f"{mark} {result.name}: {result.message}")
    usable = all(result.ok for result in results)
    if output == "json":
        print_json(
            {
                "component": tracker.name,
                "usable": usable,
                "checks": [asdict(result) for result in results],
            }
        )
    if not usable:
        raise click.ClickException(f"experiment tracker {tracker.name!r} is not usable.")
    if output == "table":
        click.echo(f"experiment tracker {tracker.name!r} is usable.")
