"""How soon a step's outputs and registered model are in MLflow after the step, on each path.

In the process that launched the step (the local orchestrator here) they are sent before the
launch returns; a step published by another process is left to the watcher's polls, measured
here with the launch hook taken out, so the watcher is the only path, as it is there.
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import timezone

from benchmarks.context import PLUS, Bench, spread

IN_PROCESS, WATCHER = "in the launching process", "by the watcher (published elsewhere)"
POLL_SECONDS = 0.05
GIVE_UP_SECONDS = 120.0


@dataclass
class OutputsResult:
    """Repetitions of one path: seconds from the step's end until the model version existed."""

    path: str
    after_step_end: list[float] = field(default_factory=list)
    at_return: list[bool] = field(default_factory=list)
    """Whether the version existed when `pipeline()` returned."""


def registered(server_url: str, name: str) -> bool:
    """Tell whether registered model `name` has a version (read directly on the server)."""
    from mlflow import MlflowClient

    return bool(MlflowClient(server_url).search_model_versions(f"name = '{name}'"))


def run_once(bench: Bench, path: str) -> tuple[float, bool]:
    """Run the model pipeline once; return (seconds from step end to registered, at return?).

    A version registered when `pipeline()` returned counts the time until the return.
    """
    from zenml.client import Client

    from testsupport.benchmark_pipelines import bench_model
    from testsupport.probe import wait_for_watcher
    from tracker_flavor.runtime import runtime

    bench.activate(PLUS)
    name = f"bench-model-{uuid.uuid4().hex[:8]}"
    if path == WATCHER:
        runtime.launches.uninstall()
    try:
        run = bench_model(registered_model_name=name)
        seen = time.time()  # at the latest
        at_return = registered(bench.server.url, name)
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not at_return and not registered(bench.server.url, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"model {name} was not registered in {GIVE_UP_SECONDS} s")
            time.sleep(POLL_SECONDS)
            seen = time.time()
        wait_for_watcher()
    finally:
        runtime.launches.install()
    (step,) = Client().get_pipeline_run(run.id).steps.values()
    assert step.end_time is not None
    end = step.end_time.replace(tzinfo=step.end_time.tzinfo or timezone.utc).timestamp()
    return max(seen - end, 0.0), at_return


def sweep(bench: Bench, reps: int) -> list[OutputsResult]:
    """Run both paths `reps` times, alternating; return their results."""
    results = {path: OutputsResult(path) for path in (IN_PROCESS, WATCHER)}
    for rep in range(reps):
        for path in (IN_PROCESS, WATCHER) if rep % 2 == 0 else (WATCHER, IN_PROCESS):
            print(f"outputs: {path}, rep {rep + 1}", flush=True)
            seconds, at_return = run_once(bench, path)
            results[path].after_step_end.append(seconds)
            results[path].at_return.append(at_return)
    return list(results.values())


def table(results: list[OutputsResult]) -> str:
    """Render the results as a Markdown table."""
    lines = [
        "| Step published | Model registered when `pipeline()` returned | Seconds after ZenML "
        "recorded the step's end until it was registered, at most (median, min–max) |",
        "|---|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.path} | {sum(result.at_return)} of {len(result.at_return)} runs | "
            f"{spread(result.after_step_end, 1)} |"
        )
    return "\n".join(lines)
