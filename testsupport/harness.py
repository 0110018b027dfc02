"""A stand-in for Kubernetes, Kubeflow or Airflow: every step of a snapshot in its own process.

Those orchestrators start each step as `python -m zenml.entrypoints.entrypoint ...
StepEntrypointConfiguration --snapshot_id ID --step_name NAME` in its own pod, and give all the
pods of one pipeline run the same orchestrator run id. This harness does the same on this
machine: a local orchestrator whose run id comes from the environment, and a scheduler that
starts each step's process as soon as its upstream steps have finished.
"""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from zenml.orchestrators.local.local_orchestrator import LocalOrchestrator, LocalOrchestratorFlavor

RUN_ID_VARIABLE = "ZENML_HARNESS_ORCHESTRATOR_RUN_ID"
ROOT = Path(__file__).resolve().parents[2]


class HarnessOrchestrator(LocalOrchestrator):
    """The local orchestrator, with the run id every step process of a run shares."""

    def get_orchestrator_run_id(self) -> str:
        return os.environ.get(RUN_ID_VARIABLE) or super().get_orchestrator_run_id()


class HarnessOrchestratorFlavor(LocalOrchestratorFlavor):
    @property
    def name(self) -> str:
        return "process_harness"

    @property
    def implementation_class(self) -> type[HarnessOrchestrator]:
        return HarnessOrchestrator


def step_command(snapshot_id: str, step: str) -> list[str]:
    return [
        sys.executable, "-m", "zenml.entrypoints.entrypoint",
        "--entrypoint_config_source",
        "zenml.entrypoints.step_entrypoint_configuration.StepEntrypointConfiguration",
        "--snapshot_id", snapshot_id, "--step_name", step,
    ]  # fmt: skip


def start_step(
    snapshot_id: str, step: str, run_id: str, stack_id: str, log: Path
) -> subprocess.Popen[bytes]:
    """Start one step of the snapshot as its own process, as a pod would."""
    env = {**os.environ, RUN_ID_VARIABLE: run_id, "ZENML_ACTIVE_STACK_ID": stack_id}
    if env.get("ZENML_STORE_API_KEY"):
        # Against a ZenML server each pod has a ZenML config of its own: processes sharing one
        # race on its credentials file, and a step then starts unauthenticated.
        env["ZENML_CONFIG_PATH"] = str(log.with_suffix(".zenml"))
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            step_command(snapshot_id, step), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def upstream_steps(snapshot: Any) -> dict[str, set[str]]:
    return {
        name: set(step.spec.upstream_steps) for name, step in snapshot.step_configurations.items()
    }


def run_snapshots(
    runs: list[tuple[Any, str]], stack_id: str, logs: Path, parallel: int = 8, timeout: float = 1500
) -> dict[tuple[str, str], int]:
    """Run (snapshot, orchestrator run id) pairs, each step in a process, at most `parallel` at once.

    Returns the exit code of every step that was started, keyed by (run id, step name).
    """
    logs.mkdir(parents=True, exist_ok=True)
    pending = {
        (run_id, name): deps
        for snapshot, run_id in runs
        for name, deps in upstream_steps(snapshot).items()
    }
    snapshot_of = {run_id: str(snapshot.id) for snapshot, run_id in runs}
    running: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    done: dict[tuple[str, str], int] = {}
    deadline = time.monotonic() + timeout
    while pending or running:
        if time.monotonic() > deadline:
            for process in running.values():
                process.kill()
            raise TimeoutError(f"steps still running after {timeout} s: {sorted(running)}")
        for key, process in list(running.items()):
            if (code := process.poll()) is not None:
                done[key] = code
                del running[key]
        for key, deps in list(pending.items()):
            run_id, name = key
            if any(done.get((run_id, dep)) not in (None, 0) for dep in deps):
                del pending[key]  # an upstream step failed: skipped, as orchestrators do
            elif len(running) < parallel and all(done.get((run_id, dep)) == 0 for dep in deps):
                log = logs / f"{run_id[:8]}-{name}.log"
                running[key] = start_step(snapshot_of[run_id], name, run_id, stack_id, log)
                del pending[key]
        time.sleep(0.2)
    return done
