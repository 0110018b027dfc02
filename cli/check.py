"""`zenml-mlflow check`: tell whether a tracker component can reach and use its MLflow store."""

import queue
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
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
    from tracker_flavor.runs import mlflow_runs as runs
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
            exp_id = runs.experiment_id(client, name, connection.artifact_location)
            run_id, latency = _probe_run(client, exp_id)
            latencies = [
                latency,
                _timed(lambda: client.log_metric(run_id, PROBE_RUN, 1.0)),
                _timed(lambda: client.get_run(run_id)),
            ]
        except Exception as error:
            yield Result("probe", False, _failure(error, uri, tracker))
            return
        yield Result(
            "probe",
            True,
            f"logged to run {PROBE_RUN!r} of experiment {name!r}, kept for the next check "
            f"(round trip {statistics.median(latencies):.0f} ms)",
        )
    finally:
        runtime.mlflow.environment.leave(bounded)


def _probe_run(client: "MlflowClient", exp_id: str) -> tuple[str, float]:
    """Return the probe run's id, creating it only the first time, and the lookup's latency.

    Reusing one run leaves no trail of deleted runs: MLflow's REST API cannot erase a run for
    good, and a check that did not write could not tell a read-only store from a usable one.
    """
    start = time.perf_counter()
    kept = client.search_runs(
        [exp_id],
        filter_string=f"attributes.run_name = '{PROBE_RUN}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    latency = (time.perf_counter() - start) * 1000
    if kept:
        return kept[0].info.run_id, latency
    run_id = client.create_run(exp_id, run_name=PROBE_RUN).info.run_id
    client.set_terminated(run_id)
    return run_id, latency


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
    to the run `probe` of experiment zenml-mlflow-check, created once and reused. Exit code 0 only
    if the tracker is usable.

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
