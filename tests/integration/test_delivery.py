"""Values a step logs survive a faulty server, and the step's count equals what the server holds."""

from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration import pipelines
from tests.integration.pipelines import bad_values, fan_out_with_a_bad_value, through_fault
from tests.integration.test_dynamic import wait_for_status
from tests.integration.test_performance import active_stack
from testsupport.proxy import DROP, FAIL, FREEZE, REFUSE, Proxy
from testsupport.servers import MlflowServer
from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY as DELIVERED_KEY
from tracker_flavor.runs.metadata import VALUES_NOT_DELIVERED_KEY as UNDELIVERED_KEY
from tracker_flavor.runs.metadata import account

pytestmark = pytest.mark.integration

REJECTED_KEY = "mlflow_values_rejected"
UNCONFIRMED_KEY = "mlflow_values_unconfirmed"


@pytest.fixture(scope="module")
def faulty(zenml_stack, mlflow_server) -> Iterator[tuple[MlflowServer, Proxy]]:
    """A real server behind a fault proxy; MLflow's own retries off so every fault shows."""
    with Proxy(mlflow_server.url) as proxy:
        with active_stack(
            "faulty", f"tracking_uri={proxy.url}", "max_retries=0", "connect_timeout_seconds=2",
            "read_timeout_seconds=2", "on_tracking_outage=fail",
        ):  # fmt: skip
            yield mlflow_server, proxy
        proxy.heal()


def stored_points(server: MlflowServer, run_id: str, key: str) -> list[int]:
    """Return the steps of every point of `key` the server holds (read past the proxy)."""
    return sorted(point.step for point in MlflowClient(server.url).get_metric_history(run_id, key))


def run_fault(proxy: Proxy, action, nested: bool = False, **counts: float):
    """Run `through_fault` with `action` mid-step; return the step's ZenML response."""
    pipelines.faults["current"] = action
    settings = {"nested": nested, "log_step_parameters": False}  # count only the step's points
    pipeline = through_fault.with_options(settings={"experiment_tracker": settings})
    try:
        run = pipeline(fault="current", **counts)
    finally:
        proxy.heal()
    return Client().get_pipeline_run(run.id).steps["log_through_fault"]


def assert_exact(server: MlflowServer, step, total: int) -> None:
    """The step succeeded and its count is exactly what the server holds, without duplicates."""
    metadata = step.run_metadata
    assert step.status == "completed"
    counts = account(metadata)
    assert counts[DELIVERED_KEY] == total and counts[UNDELIVERED_KEY] == 0, metadata
    assert stored_points(server, metadata["mlflow_run_id"], "faulted") == list(range(total))


def test_values_logged_after_a_blip_are_delivered(faulty, process_snapshot):
    server, proxy = faulty
    step = run_fault(
        proxy,
        lambda: proxy.inject(REFUSE, seconds=3),
        first=1000,
        during=1500,
        pause=3.5,
        last=1500,
    )
    assert proxy.faulted[REFUSE] >= 1
    assert_exact(server, step, 4000)


def test_frozen_requests_that_land_later_are_counted_once(faulty, process_snapshot):
    server, proxy = faulty
    step = run_fault(
        proxy,
        lambda: proxy.inject(FREEZE, seconds=4),
        first=500,
        during=1500,
        pause=5,
        last=500,
    )
    assert proxy.faulted[FREEZE] >= 1
    assert_exact(server, step, 2500)


def test_lost_responses_are_resent_and_the_step_succeeds(faulty, process_snapshot):
    server, proxy = faulty
    step = run_fault(proxy, lambda: proxy.inject(DROP, count=2), nested=True, during=10)
    # The batch whose answer was lost is found in the run's history: not sent a second time.
    assert proxy.faulted[DROP] == 1
    assert_exact(server, step, 10)
    run = MlflowClient(server.url).get_run(step.run_metadata["mlflow_run_id"])
    assert run.info.status == "FINISHED"


def test_server_errors_are_retried(faulty, process_snapshot):
    server, proxy = faulty
    step = run_fault(proxy, lambda: proxy.inject(FAIL, count=3), during=1200, pause=4, last=100)
    assert proxy.faulted[FAIL] == 3
    assert_exact(server, step, 1300)


def test_one_bad_value_costs_only_itself_also_in_the_users_own_run(
    faulty, process_snapshot, caplog
):
    server, _ = faulty
    run = bad_values(good=99)
    step = Client().get_pipeline_run(run.id).steps["log_bad_values"]
    assert step.status == "completed"
    client = MlflowClient(server.url)
    step_run = client.get_run(step.run_metadata["mlflow_run_id"])
    own_run_id = step_run.data.tags["own_run"]
    assert stored_points(server, own_run_id, "own") == list(range(99))
    assert client.get_run(own_run_id).data.params == {"lr": "0.1"}
    assert stored_points(server, step_run.info.run_id, "steps") == list(range(99))
    assert stored_points(server, step_run.info.run_id, "nan") == list(range(99))
    # 99 own + lr + the tag + 99 steps + 99 NaNs; the bad name and the changed param are refused.
    assert account(step.run_metadata)[DELIVERED_KEY] == 299
    assert account(step.run_metadata)[UNDELIVERED_KEY] == 0
    assert account(step.run_metadata)[REJECTED_KEY] == 2
    assert caplog.text.count("'bad name!'") == 1  # one warning naming the key, not one per value
    assert "'lr'" in caplog.text


def test_one_mapped_steps_bad_value_does_not_fail_the_others(faulty, process_snapshot, monkeypatch):
    server, _ = faulty
    monkeypatch.setenv("ZENML_DYNAMIC_PIPELINE_WORKER_COUNT", "8")
    run = Client().get_pipeline_run(fan_out_with_a_bad_value(count=8).id)
    assert run.status == "completed"
    mapped = {name: step for name, step in run.steps.items() if name.startswith("map:")}
    assert len(mapped) == 8
    for x in range(8):  # each mapped step logs into its own run; the item x is its index
        own_run = mapped[f"map:square_with_a_bad_value:{x}"].run_metadata["mlflow_run_id"]
        assert stored_points(server, own_run, f"square_{x}") == list(range(10))
    parent_id = next(iter(mapped.values())).run_metadata["mlflow_parent_run_id"]
    rejected = sorted(account(step.run_metadata)[REJECTED_KEY] for step in mapped.values())
    assert rejected == [0] * 7 + [2]  # counted on the step that logged them, only
    # Ten points each, the param "shared", and each step's item x: a param of its run.
    assert (
        sum(account(step.run_metadata)[DELIVERED_KEY] for step in mapped.values()) == 8 * 10 + 1 + 8
    )
    assert all(account(step.run_metadata)[UNDELIVERED_KEY] == 0 for step in mapped.values())
    # The watcher settles a dynamic run's parent just after the run ends.
    assert wait_for_status(MlflowClient(server.url), parent_id, "FINISHED") == "FINISHED"
