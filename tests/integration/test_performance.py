"""Round trips per step against a real server, and no lost point reported as logged."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.pipelines import outage
from testsupport.benchmark_pipelines import LINEAR_STEPS, bench_linear, bench_map
from testsupport.probe import Probe, wait_for_watcher
from testsupport.proxy import Proxy
from testsupport.servers import MlflowServer
from tracker_flavor.cli.main import cli
from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY as DELIVERED_KEY
from tracker_flavor.runs.metadata import VALUES_NOT_DELIVERED_KEY as UNDELIVERED_KEY
from tracker_flavor.runs.metadata import account
from tracker_flavor.tracker import MLflowPlusExperimentTracker

pytestmark = pytest.mark.integration


@contextmanager
def active_stack(name: str, *config: str) -> Iterator[None]:
    """Register an mlflow_plus tracker and stack `name` with `config`, and make it active."""
    args = ["install", "--stack", name, "--tracker", name]
    for pair in config:
        args += ["--config", pair]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    try:
        yield
    finally:
        Client().activate_stack("embedded")


@pytest.fixture(scope="module")
def proxied(zenml_stack, mlflow_server) -> Iterator[tuple[MlflowServer, Proxy]]:
    with Proxy(mlflow_server.url) as proxy, active_stack("perf", f"tracking_uri={proxy.url}"):
        yield mlflow_server, proxy


@pytest.mark.parametrize(("nested", "limit"), [(False, 3), (True, 4)])
def test_requests_per_step_stay_within_the_targets(proxied, process_snapshot, nested, limit):
    server, proxy = proxied
    # Outputs' reports and lineage are sent after each step, off here: they would
    # land in the next step's count (tests/integration/test_outputs.py measures them).
    off = {"track_reports": False, "lineage": False}
    pipeline = bench_linear.with_options(settings={"experiment_tracker": {"nested": nested, **off}})
    with Probe(lambda: proxy.total).instrumented(MLflowPlusExperimentTracker) as probe:
        with probe.run() as steps:
            run = pipeline()
    assert len(steps) == LINEAR_STEPS
    assert all(sample.requests <= limit for sample in steps[1:-1]), steps
    assert steps[-1].requests <= limit + 1, steps  # the last step also settles the parent run
    assert steps[0].requests <= limit + 3, steps
    # Every step's metric arrived.
    client = MlflowClient(server.url)
    runs = client.search_runs(
        [client.get_experiment_by_name("bench_linear").experiment_id],
        filter_string=f"tags.`zenml.pipeline_run_id` = '{run.id}'",
    )
    points = sum(len(client.get_metric_history(r.info.run_id, "value")) for r in runs)
    assert points == LINEAR_STEPS


MAPPED = 4
CREATE, UPDATE = "/api/2.0/mlflow/runs/create", "/api/2.0/mlflow/runs/update"
GET_RUN = "/api/2.0/mlflow/runs/get"
DEFAULTS_LIMIT = 4
"""MLflow requests per step with the defaults: start, values, outputs' upload, lineage."""
RUN_REQUESTS = 6
"""What a run asks once: the experiment's lookup (and creation), the parent's search, creation,
end and its artifact URI."""


def test_a_step_with_the_defaults_sends_at_most_four_requests(proxied):
    # Lineage and reports on: everything a step causes, the sends after it included. A mapped
    # step's own run (its creation and end) is counted apart; every run is read back at most once.
    _, proxy = proxied
    for run, steps in ((bench_linear, LINEAR_STEPS), (lambda: bench_map(width=MAPPED), MAPPED + 1)):
        before = proxy.counts()[0]
        run()
        wait_for_watcher()
        kinds = proxy.counts()[0] - before
        own_runs = kinds[CREATE] - 1 + kinds[UPDATE] - 1  # beyond the parent's
        assert kinds.total() - own_runs <= DEFAULTS_LIMIT * steps + RUN_REQUESTS, kinds
        assert kinds[GET_RUN] <= 1, kinds


def test_a_server_lost_mid_step_fails_the_step_with_the_count_of_lost_points(
    zenml_stack, session_dir, process_snapshot, caplog
):
    workdir = session_dir / "servers" / "outage"
    server = MlflowServer(workdir).start()
    assert server.process is not None
    try:
        config = (
            # A loaded machine's server may take seconds to answer the step's start; once it is
            # killed, refused connections fail at once, whatever the read timeout.
            f"tracking_uri={server.url}", "max_retries=0", "connect_timeout_seconds=5",
            "read_timeout_seconds=20", "on_tracking_outage=fail",
        )  # fmt: skip
        with active_stack("outage", *config), pytest.raises(RuntimeError):
            outage(server_pid=server.process.pid, delivered=1200, lost=800)
    finally:
        server.stop()
    run = Client().get_pipeline("outage").last_run
    step = run.steps["log_through_outage"]
    assert step.status == "failed"
    assert account(step.run_metadata)[DELIVERED_KEY] == 1200
    assert account(step.run_metadata)[UNDELIVERED_KEY] == 800
    assert "800 of 2000 points" in caplog.text  # ZenML logs why the step failed
    # What the tracker reported as delivered is on the server (read from its database).
    stored = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    history = stored.get_metric_history(step.run_metadata["mlflow_run_id"], "outage")
    assert sorted(point.step for point in history) == list(range(1200))
