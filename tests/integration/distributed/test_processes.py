"""Steps of one pipeline run in separate processes, at the same time, share one parent run."""

import signal
import time
import uuid

import pytest
from mlflow import MlflowClient
from zenml.client import Client

from tests.integration.distributed.conftest import snapshot_of
from tests.integration.distributed.pipelines import POINTS, fan_out, gated, six_steps
from tests.integration.test_run_model import runs_of
from testsupport.harness import run_snapshots, start_step

pytestmark = pytest.mark.integration


def zenml_run(snapshot, orchestrator_run_id):
    (run,) = [
        r for r in Client().list_pipeline_runs(snapshot_id=snapshot.id, size=50).items
        if r.orchestrator_run_id == orchestrator_run_id
    ]  # fmt: skip
    return Client().get_pipeline_run(run.id)


def test_fan_out_of_six_processes_and_a_join(cluster):
    snapshot = snapshot_of(fan_out, cluster)
    run_id = str(uuid.uuid4())
    codes = run_snapshots([(snapshot, run_id)], cluster.stack_id, cluster.logs)
    assert codes == {(run_id, name): 0 for name in snapshot.step_configurations}, cluster.logs
    run = zenml_run(snapshot, run_id)
    assert run.status == "completed"
    client = MlflowClient(cluster.server.url)
    parents, children = runs_of(client, run.id)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert set(children) == set(snapshot.step_configurations) and len(children) == 7
    assert all(child.info.status == "FINISHED" for child in children.values())
    for i in range(6):
        history = client.get_metric_history(children[f"part_{i}"].info.run_id, f"part_{i}")
        assert len(history) == POINTS
    assert str(run.run_metadata["mlflow_parent_run_id"]) == parents[0].info.run_id


def wait_for(condition, seconds=300.0):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
    return value


def test_killed_step_is_repaired_and_its_relaunch_reuses_the_parent(cluster, session_dir):
    from click.testing import CliRunner
    from zenml.orchestrators.publish_utils import publish_failed_step_run

    from tracker_flavor.cli.main import cli

    marker = session_dir / f"gate-{uuid.uuid4().hex[:6]}"
    marker.write_text("hang")
    snapshot = snapshot_of(gated.with_options(parameters={"marker": str(marker)}), cluster)
    run_id = str(uuid.uuid4())
    part = start_step(
        str(snapshot.id), "part", run_id, cluster.stack_id, cluster.logs / "g-part.log"
    )
    assert part.wait(timeout=600) == 0
    hung = start_step(
        str(snapshot.id), "gate", run_id, cluster.stack_id, cluster.logs / "g-gate.log"
    )
    client = MlflowClient(cluster.server.url)
    run = zenml_run(snapshot, run_id)
    wait_for(lambda: "gate" in runs_of(client, run.id)[1])
    hung.send_signal(signal.SIGKILL)  # the pod dies: no hook of ours runs
    hung.wait(timeout=60)
    (parent,), children = runs_of(client, run.id)
    assert children["gate"].info.status == "RUNNING" and parent.info.status == "RUNNING"

    # The orchestrator records the dead pod's step as failed and starts it again (the step allows
    # one retry): the new attempt joins the same ZenML run and the same parent run.
    publish_failed_step_run(Client().get_pipeline_run(run.id).steps["gate"].id)
    marker.write_text("pass")
    again = start_step(
        str(snapshot.id), "gate", run_id, cluster.stack_id, cluster.logs / "g-again.log"
    )
    assert again.wait(timeout=600) == 0
    parents, _ = runs_of(client, run.id)
    assert [p.info.run_id for p in parents] == [parent.info.run_id]

    # The killed attempt's run is still RUNNING; the repair command gives it ZenML's verdict.
    def attempts():
        found = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`zenml.pipeline_run_id` = '{run.id}' and tags.`zenml.step_name` = 'gate'",
        )
        return {r.data.tags["zenml.attempt"]: r.info.status for r in found}

    assert attempts() == {"1": "RUNNING", "2": "FINISHED"}
    result = CliRunner().invoke(cli, ["runs", "gated", "--repair", "--output", "json"])
    assert result.exit_code == 0, result.output
    assert attempts() == {"1": "FAILED", "2": "FINISHED"}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


@pytest.mark.load
# On the production topology only: the session's SQLite store had this test in earlier CI runs,
# and both would take about 20 of CI's 45 minutes.
@pytest.mark.parametrize("session_cluster", ["zenml-server"], indirect=True)
def test_load_six_pipelines_of_six_steps(cluster, capsys):
    snapshot = snapshot_of(six_steps, cluster)
    runs = [(snapshot, str(uuid.uuid4())) for _ in range(6)]
    cluster.proxy.reset()
    started = time.monotonic()
    codes = run_snapshots(runs, cluster.stack_id, cluster.logs, parallel=6)
    wall = time.monotonic() - started
    assert len(codes) == 36 and set(codes.values()) == {0}
    client = MlflowClient(cluster.server.url)
    for _, run_id in runs:
        run = zenml_run(snapshot, run_id)
        parents, children = runs_of(client, run.id)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(children) == 6 and all(c.info.status == "FINISHED" for c in children.values())
        for i in range(5):
            assert (
                len(client.get_metric_history(children[f"part_{i}"].info.run_id, f"part_{i}"))
                == POINTS
            )
    with capsys.disabled():
        print(
            f"\nload: 6 pipelines x 6 step processes in {wall:.0f} s, "
            f"{cluster.proxy.total} tracking requests ({cluster.proxy.total / 36:.1f} per step)"
        )
