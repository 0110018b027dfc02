"""Against ZenML's built-in `mlflow` flavor: a step's cost, and 2,000 points in one step."""

import time
import uuid
from dataclasses import dataclass, field

from benchmarks.context import BUILTIN, NESTED, NONE, PLUS, Bench, median, spread

LATENCIES_MS = (0, 20)
POINTS = 2000
STEP_GOAL_MS, STEP_GOAL_SHARE, POINTS_GOAL_SHARE = 50.0, 1 / 10, 1 / 100
"""Through +20 ms: a step's cost beyond untracked, and its share of the built-in's; the points'."""


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
    from testsupport.probe import wait_for_watcher

    pipeline = bench_linear.with_options(
        settings={"experiment_tracker": {"nested": True}} if variant == NESTED else {}
    )
    start = time.perf_counter()
    with bench.probe.run() as steps:
        pipeline(tracked=variant != NONE)
        result.wall_seconds.append(time.perf_counter() - start)
        wait_for_watcher()  # the run's last settlements are its own, not the next run's
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


def sweep(bench: Bench, reps: int, point_latencies: tuple[int, ...]) -> Comparison:
    """Run the comparison at each latency, alternating variants (points at `point_latencies`)."""
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
        for variant in (BUILTIN, PLUS) if latency in point_latencies else ():
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


def step_cost_ms(found: Comparison, latency: int, variant: str) -> float:
    """Return what a step of `variant` costs beyond the untracked run, ms (median walls)."""
    from testsupport.benchmark_pipelines import LINEAR_STEPS

    walls = found.linear[(latency, variant)].wall_seconds
    untracked = found.linear[(latency, NONE)].wall_seconds
    return (median(walls) - median(untracked)) / LINEAR_STEPS * 1000


def goals(found: Comparison) -> str:
    """State the goals: a step's cost through the slow link, and the points' time."""
    from benchmarks.report import verdict

    lines = []
    latency = max(LATENCIES_MS)
    if (latency, PLUS) in found.linear and (latency, BUILTIN) in found.linear:
        plus, builtin = (step_cost_ms(found, latency, v) for v in (PLUS, BUILTIN))
        share = plus / builtin if builtin > 0 else float("inf")
        lines.append(
            f"- Through +{latency} ms, a step with mlflow_plus (its defaults) costs "
            f"{plus:.0f} ms more than untracked (goal ≤ {STEP_GOAL_MS:.0f} ms: "
            f"{verdict(plus, STEP_GOAL_MS)}), the built-in flavor's {builtin:.0f} ms: "
            f"{share:.2f} of it (goal ≤ {STEP_GOAL_SHARE}: {verdict(share, STEP_GOAL_SHARE)}); "
            "from the runs' median wall times over the 10 steps."
        )
    for at in sorted({latency for latency, _ in found.points}):
        if (at, PLUS) in found.points and (at, BUILTIN) in found.points:
            plus_s, builtin_s = (median(found.points[(at, v)]) for v in (PLUS, BUILTIN))
            share = plus_s / builtin_s
            lines.append(
                f"- {POINTS:,} points at +{at} ms: mlflow_plus delivered them in {plus_s:.2f} s, "
                f"the built-in in {builtin_s:.1f} s: 1/{builtin_s / plus_s:.0f} of its time "
                f"(goal ≤ 1/{1 / POINTS_GOAL_SHARE:.0f}: {verdict(share, POINTS_GOAL_SHARE)})."
            )
    return "\n".join(lines)
