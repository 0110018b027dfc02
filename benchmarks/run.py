"""Benchmark mlflow_plus against ZenML's built-in mlflow tracker and no tracker.

Starts a real `mlflow server` and a latency-injecting, request-counting proxy on 127.0.0.1,
registers both flavors in a private ZenML store, runs the same pipelines with each tracker
(alternating, several repetitions, at 0 and 20 ms added latency per request), prints one table
and writes it to docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run [--reps 3] [--output docs/benchmarks.md]
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from testsupport.probe import Probe

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.mkdtemp(prefix="mlflow-plus-bench-"))
# Before ZenML is imported: a private, quiet store that the user's set-up never sees.
os.environ["ZENML_CONFIG_PATH"] = str(WORK / "zenml")
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "ERROR"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)

BUILTIN, PLUS, NESTED, NONE = "mlflow", "mlflow_plus", "mlflow_plus nested", "no tracker"
LATENCIES_MS = (0, 20)
POINTS = 2000
MANY_POINTS = 10000


@dataclass
class LinearResult:
    """Per-step samples of the linear pipeline for one tracker and latency."""

    later_hook_ms: list[float] = field(default_factory=list)
    first_hook_ms: list[float] = field(default_factory=list)
    later_requests: list[int] = field(default_factory=list)
    first_requests: list[int] = field(default_factory=list)
    run_start_requests: list[int] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)


@dataclass
class PointsResult:
    """Samples of the points pipeline for one tracker, latency and number of points."""

    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)


def spread(values: list[float], digits: int = 0) -> str:
    """Return 'median (min–max)' of `values`."""
    if not values:
        return "–"
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:.{digits}f}"
    return f"{middle:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def ratio(ours: list[float], theirs: list[float]) -> str:
    """Return the ratio of the medians, as '1/N' when ours is smaller."""
    if not ours or not theirs or not statistics.median(ours):
        return "–"
    value = statistics.median(ours) / statistics.median(theirs)
    return f"1/{1 / value:.1f}" if value < 1 else f"{value:.2f}"


def machine() -> str:
    """Describe the machine the benchmark ran on."""
    import mlflow
    import zenml

    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, zenml {zenml.__version__}, "
        f"mlflow {mlflow.__version__}; measured {date.today().isoformat()}"
    )


def register_stacks(tracking_uri: str) -> dict[str, str]:
    """Register both flavors' trackers and one stack per variant; return variant -> stack."""
    from click.testing import CliRunner
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "install", "--stack", "bench-plus", "--tracker", "bench-plus",
            "--config", f"tracking_uri={tracking_uri}", "--no-activate",
        ],
    )  # fmt: skip
    if result.exit_code:
        raise RuntimeError(result.output)
    client = Client()
    default = client.get_stack("default")
    components = {kind: [found[0].id] for kind, found in default.components.items()}
    builtin = client.create_stack_component(
        name="bench-builtin",
        flavor="mlflow",
        component_type=StackComponentType.EXPERIMENT_TRACKER,
        # The built-in refuses a server without authentication: a dummy token passes through.
        configuration={"tracking_uri": tracking_uri, "tracking_token": "benchmark"},
    )
    client.create_stack(
        name="bench-builtin",
        components={**components, StackComponentType.EXPERIMENT_TRACKER: [builtin.id]},
    )
    return {BUILTIN: "bench-builtin", PLUS: "bench-plus", NESTED: "bench-plus", NONE: "default"}


def delivered_points(server_url: str, experiment: str, run_name: str, key: str) -> int:
    """Count the points of metric `key` on the server (directly, not through the proxy)."""
    from mlflow import MlflowClient

    client = MlflowClient(server_url)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"attributes.run_name = '{run_name}'"
    )
    return sum(len(client.get_metric_history(run.info.run_id, key)) for run in runs)


def run_linear(variant: str, probe: "Probe", result: LinearResult) -> None:
    """Run the 10-step pipeline once with `variant` and record its samples."""
    from testsupport.benchmark_pipelines import bench_linear

    pipeline = bench_linear.with_options(
        settings={"experiment_tracker": {"nested": True}} if variant == NESTED else {}
    )
    start = time.perf_counter()
    with probe.run() as steps:
        pipeline(tracked=variant != NONE)
    result.wall_seconds.append(time.perf_counter() - start)
    if variant == NONE:
        return
    result.first_hook_ms.append(steps[0].hook_seconds * 1000)
    result.first_requests.append(steps[0].requests)
    result.later_hook_ms.extend(sample.hook_seconds * 1000 for sample in steps[1:])
    result.later_requests.extend(sample.requests for sample in steps[1:])
    result.run_start_requests.append(probe.run_start_requests)


def run_points(variant: str, count: int, probe: "Probe", server_url: str) -> tuple[float, int, int]:
    """Run the points pipeline once; return (logging seconds, requests, points delivered)."""
    from testsupport.benchmark_pipelines import bench_points, logging_seconds

    key = f"points_{uuid.uuid4().hex[:8]}"
    with probe.run() as steps:
        run = bench_points(key=key, count=count)
    (sample,) = steps
    # The loop inside the step, plus the delivery before the step is reported finished.
    seconds = logging_seconds[key] + sample.metadata_seconds
    delivered = delivered_points(server_url, "bench_points", run.name, key)
    return seconds, sample.requests, delivered


def table(
    linear: dict[tuple[int, str], LinearResult],
    points: dict[tuple[int, str, int], PointsResult],
) -> str:
    """Render the results as one Markdown table."""
    lines = [
        "| added latency | tracker | workload | hook time per step, ms | requests per step "
        "(steps 2–10; first step) | requests at run start | logging time, s | requests "
        "| points delivered | vs built-in |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (latency, variant), result in linear.items():
        builtin = linear[(latency, BUILTIN)]
        if variant == NONE:
            hooks = requests = start = versus = "0"
        else:
            hooks = spread(result.later_hook_ms)
            first = spread([float(n) for n in result.first_requests])
            requests = f"{spread([float(n) for n in result.later_requests])}; first {first}"
            start = spread([float(n) for n in result.run_start_requests])
            versus = (
                "–"
                if variant == BUILTIN
                else f"{ratio(result.later_hook_ms, builtin.later_hook_ms)} hook time"
            )
        lines.append(
            f"| +{latency} ms | {variant} | 10-step pipeline (run {spread(result.wall_seconds, 1)}"
            f" s) | {hooks} | {requests} | {start} | – | – | – | {versus} |"
        )
    for (latency, variant, count), result in points.items():
        builtin_points = points.get((latency, BUILTIN, POINTS))
        versus = "–"
        if variant != BUILTIN and builtin_points is not None and count == POINTS:
            versus = f"{ratio(result.seconds, builtin_points.seconds)} logging time"
        lines.append(
            f"| +{latency} ms | {variant} | {count:,} points in one step | – | – | – | "
            f"{spread(result.seconds, 2)} | {spread([float(n) for n in result.requests])} | "
            f"{spread([float(n) for n in result.delivered])} | {versus} |"
        )
    return "\n".join(lines)


METHOD = """\
How it is measured (`benchmarks/run.py`):

- One `mlflow server` (SQLite backend, `--workers 1`) and a proxy in front of it on 127.0.0.1,
  which adds the stated latency to every request and counts requests; all trackers talk to the
  proxy (the built-in with a dummy `tracking_token`, which the plain server ignores). Requests
  are counted at the proxy, never estimated.
- The same pipelines run on the local orchestrator with the built-in `mlflow` flavor,
  `mlflow_plus` (unified, and nested for the 10-step pipeline) and no tracker, alternating
  between them in every repetition.
- **Hook time per step** is the time spent inside the tracker's `prepare_step_run`,
  `get_step_run_metadata` and `cleanup_step_run`, measured by wrapping those methods of each
  tracker class in the benchmark process; median (min–max) over steps 2–10 of every repetition.
  ZenML's own per-step cost (seconds) is not included; the run's wall time is shown for scale.
- **Requests per step** are the proxy's requests between the start of `prepare_step_run` and the
  end of `cleanup_step_run` of steps 2–10, including the step's own `mlflow.log_metric`; the
  first step's count is in brackets. **Requests at run start** are made by
  `get_pipeline_run_metadata` when ZenML creates the run (`mlflow_plus` creates the parent run
  there; the built-in makes none).
- **Logging time** is the step's loop of `mlflow.log_metric` calls plus, for `mlflow_plus`, the
  delivery of the queued points in `get_step_run_metadata` (before the step is reported
  finished). **Requests** are all the proxy's requests during the step; **points delivered**
  are read from the server directly afterwards.
- The built-in's 2,000-point run takes about 80 s at +20 ms, so it runs once per latency, as do
  the 10,000-point run and the pipeline without a tracker; the other rows run `--reps` times
  (median and min–max shown). Step logs and artifact metadata are off in these pipelines, which
  shortens ZenML's own work per step for every variant alike.
"""


def main() -> None:
    """Run the benchmark, print the table and write it to the output file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions per configuration")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    began = time.perf_counter()
    load_before = os.getloadavg()[0]

    from zenml.client import Client
    from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
        MLFlowExperimentTracker,
    )

    from testsupport.probe import Probe
    from testsupport.proxy import Proxy
    from testsupport.servers import MlflowServer
    from tracker_flavor.tracker import MLflowPlusExperimentTracker

    print("starting mlflow server ...", flush=True)
    # No job-runner processes: they only compete with the measured process for the CPU.
    server = MlflowServer(WORK / "server")
    server.start()
    try:
        with ExitStack() as stack:
            proxy = stack.enter_context(Proxy(server.url))
            stacks = register_stacks(proxy.url)
            probe = Probe(lambda: proxy.total)
            stack.enter_context(
                probe.instrumented(MLFlowExperimentTracker, MLflowPlusExperimentTracker)
            )
            linear: dict[tuple[int, str], LinearResult] = {}
            points: dict[tuple[int, str, int], PointsResult] = {}
            variants = [BUILTIN, PLUS, NESTED, NONE]
            for latency in LATENCIES_MS:
                proxy.delay = latency / 1000
                for variant in variants:
                    linear[(latency, variant)] = LinearResult()
                for rep in range(args.reps):
                    order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
                    for variant in order:
                        if variant == NONE and rep:
                            continue  # only the run's wall time, for scale: once is enough
                        Client().activate_stack(stacks[variant])
                        print(f"+{latency} ms, rep {rep + 1}: {variant}", flush=True)
                        run_linear(variant, probe, linear[(latency, variant)])
                jobs = [(BUILTIN, POINTS, 1), (PLUS, POINTS, args.reps), (PLUS, MANY_POINTS, 1)]
                for variant, count, reps in jobs:
                    Client().activate_stack(stacks[variant])
                    result = points.setdefault((latency, variant, count), PointsResult())
                    for rep in range(reps):
                        print(
                            f"+{latency} ms, {count} points, rep {rep + 1}: {variant}", flush=True
                        )
                        seconds, requests, delivered = run_points(variant, count, probe, server.url)
                        result.seconds.append(seconds)
                        result.requests.append(requests)
                        result.delivered.append(delivered)
    finally:
        server.stop()
    rendered = table(linear, points)
    minutes = (time.perf_counter() - began) / 60
    print(rendered)
    print(f"benchmark took {minutes:.1f} min")
    args.output.write_text(
        "# Benchmarks\n\n"
        "`mlflow_plus` against ZenML's built-in `mlflow` experiment tracker, same run, same "
        "server. Reproduce with `make bench` (`.venv/bin/python -m benchmarks.run`, about "
        f"{minutes:.0f} minutes).\n\n"
        f"{rendered}\n\n"
        f"Machine: {machine()}; {args.reps} repetitions; 1-minute load average "
        f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (other work on "
        "the machine slows every variant, the built-in's 2,000 requests most).\n\n"
        f"{METHOD}"
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
