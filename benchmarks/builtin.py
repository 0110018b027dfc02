"""Against ZenML's built-in `mlflow` flavor (`--full` only: its 2,000-point runs take minutes)."""

import time
import uuid
from dataclasses import dataclass, field

from benchmarks.context import BUILTIN, NESTED, NONE, PLUS, Bench, spread

LATENCIES_MS = (0, 20)
POINTS = 2000


@dataclass
class LinearResult:
    """Per-step samples of the 10-step pipeline for one tracker and latency."""

    hook_ms: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)


@dataclass
class Comparison:
    """Results by (latency, variant): the 10-step pipeline, and 2,000 points in one step."""

    linear: dict[tuple[int, str], LinearResult] = field(default_factory=dict)
    points: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    point_requests: dict[tuple[int, str], list[int]] = field(default_factory=dict)


def run_linear(bench: Bench, variant: str, result: LinearResult) -> None:
    """Run the 10-step pipeline once with `variant` and record its samples."""
    from testsupport.benchmark_pipelines import bench_linear

    pipeline = bench_linear.with_options(
        settings={"experiment_tracker": {"nested": True}} if variant == NESTED else {}
    )
    start = time.perf_counter()
    with bench.probe.run() as steps:
        pipeline(tracked=variant != NONE)
    result.wall_seconds.append(time.perf_counter() - start)
    result.hook_ms.extend(sample.hook_seconds * 1000 for sample in steps[1:])
    result.requests.extend(sample.requests for sample in steps[1:])


def run_points(bench: Bench, variant: str) -> tuple[float, int]:
    """Log 2,000 points in one step with `variant`; return (seconds, requests)."""
    from testsupport.benchmark_pipelines import bench_points, logging_seconds

    key = f"points_{uuid.uuid4().hex[:8]}"
    before = bench.proxy.total
    with bench.probe.run() as steps:
        bench_points(key=key, count=POINTS)
    seconds = logging_seconds[key] + sum(sample.metadata_seconds for sample in steps)
    return seconds, bench.proxy.total - before


def sweep(bench: Bench, reps: int) -> Comparison:
    """Run the comparison at each latency, alternating variants."""
    found = Comparison()
    variants = [BUILTIN, PLUS, NESTED, NONE]
    for latency in LATENCIES_MS:
        bench.proxy.delay = latency / 1000
        for rep in range(reps):
            for variant in variants[rep % 4 :] + variants[: rep % 4]:
                bench.activate(variant)
                print(f"built-in: +{latency} ms, rep {rep + 1}: {variant}", flush=True)
                result = found.linear.setdefault((latency, variant), LinearResult())
                run_linear(bench, variant, result)
        for variant in (BUILTIN, PLUS):
            bench.activate(variant)
            print(f"built-in: +{latency} ms, {POINTS:,} points: {variant}", flush=True)
            seconds, requests = run_points(bench, variant)
            found.points.setdefault((latency, variant), []).append(seconds)
            found.point_requests.setdefault((latency, variant), []).append(requests)
    bench.proxy.delay = 0.0
    return found


def table(found: Comparison) -> str:
    """Render the comparison as a Markdown table."""
    lines = [
        "| added latency | tracker | 10-step run, s | hook time per step, ms | requests per "
        "step | 2,000 points: logging time, s | requests |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (latency, variant), result in found.linear.items():
        tracked = variant != NONE
        seconds = found.points.get((latency, variant), [])
        requests = found.point_requests.get((latency, variant), [])
        lines.append(
            f"| +{latency} ms | {variant} | {spread(result.wall_seconds, 1)} | "
            f"{spread(result.hook_ms) if tracked else '0'} | "
            f"{spread([float(n) for n in result.requests]) if tracked else '0'} | "
            f"{spread(seconds, 2)} | {spread([float(n) for n in requests])} |"
        )
    return "\n".join(lines)
