"""Render the sweeps as Markdown tables and the width plot."""

from pathlib import Path

from benchmarks.context import spread
from benchmarks.history import HistoryPoint
from benchmarks.points import MODES, PointsResult
from benchmarks.width import DYNAMIC, RUN_KINDS, STATIC, WidthPoint

WIDTH_GOAL, HISTORY_GOAL, WALL_GOAL = 1.3, 1.2, 1.5


def verdict(value: float, goal: float) -> str:
    """Return 'met' or 'not met' for a ratio against its goal."""
    return "met" if value <= goal else "**not met**"


def tracked_points(points: list[WidthPoint], shape: str) -> list[WidthPoint]:
    """Return the tracked runs of `shape`, narrowest first."""
    return sorted((p for p in points if p.shape == shape and p.tracked), key=lambda p: p.width)


def width_table(points: list[WidthPoint]) -> str:
    """Render the width sweep."""
    lines = [
        "| pipeline | width | tracker | run, s (+ watcher after it) | tracker time per step, ms "
        "(median; first step) | MLflow requests per step (+ per run) | tracker's ZenML store "
        "calls per step (in hooks; watcher) | store records a step reads (max) | all ZenML "
        "store calls per step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        all_calls = f"{p.per_step(p.store_calls):.1f}"
        if not p.tracked:
            lines.append(
                f"| {p.shape} | {p.width} | off | {p.wall_seconds:.1f} | – | – | – | – | "
                f"{all_calls} |"
            )
            continue
        hook_calls = max(p.hook_store_calls, default=0)
        lines.append(
            f"| {p.shape} | {p.width} | on | {p.wall_seconds:.1f} (+ {p.settle_seconds:.1f}) | "
            f"{spread(p.hook_ms)}; {p.first_hook_ms:.0f} | {p.step_requests:.2f} (+ "
            f"{p.run_requests}) | "
            f"{p.per_step(p.tracker_store_calls):.2f} (≤ {hook_calls} per step; "
            f"{p.watcher_store_calls} in all) | {max(p.hook_store_records, default=0)} | "
            f"{all_calls} |"
        )
    return "\n".join(lines)


def width_goals(points: list[WidthPoint]) -> str:
    """State the width goals: time per step at the widest against the narrowest."""
    lines = []
    for shape in (DYNAMIC, STATIC):
        tracked = tracked_points(points, shape)
        if len(tracked) < 2:
            continue
        narrow, wide = tracked[0], tracked[-1]
        ratio = wide.hook_ms_per_step / narrow.hook_ms_per_step
        calls = sorted({c for p in tracked for c in p.hook_store_calls})
        lines.append(
            f"- {shape}: tracker time per step at {wide.width} items is {ratio:.2f}× its time at "
            f"{narrow.width} (goal ≤ {WIDTH_GOAL}×: {verdict(ratio, WIDTH_GOAL)}); MLflow requests "
            f"per step {', '.join(f'{p.step_requests:.2f}' for p in tracked)} at widths "
            f"{', '.join(str(p.width) for p in tracked)}; store calls in a step's hooks after "
            f"the first: {calls} at every width; at width {wide.width}, per step: "
            f"{by_kind(wide)}."
        )
        walls = [
            f"{ratio:.2f}× at width {on.width}"
            + (f" (goal ≤ {WALL_GOAL}×: {verdict(ratio, WALL_GOAL)})" if on.width >= 100 else "")
            for on, off in pairs(points, shape)
            for ratio in [on.wall_seconds / off.wall_seconds]
        ]
        if walls:
            lines.append(
                f"- {shape}: run wall time with the tracker against without: {', '.join(walls)}."
            )
    return "\n".join(lines)


def pairs(points: list[WidthPoint], shape: str) -> list[tuple[WidthPoint, WidthPoint]]:
    """Return (tracked, untracked) runs of `shape` at the widths measured both ways."""
    return [
        (on, off)
        for on in tracked_points(points, shape)
        for off in points
        if off.shape == shape and off.width == on.width and not off.tracked
    ]


def breakdowns(points: list[WidthPoint]) -> str:
    """Render where a step's time went, for the widest runs measured both ways."""
    from benchmarks.breakdown import table

    sections = []
    for shape in (STATIC, DYNAMIC):
        found = pairs(points, shape)
        if not found:
            continue
        on, off = found[-1]
        sections.append(
            f"{shape}, width {on.width} ({on.steps} steps): {on.wall_seconds:.1f} s tracked, "
            f"{off.wall_seconds:.1f} s untracked.\n\n"
            + table(on.parts, on.steps, on.wall_seconds - off.wall_seconds)
        )
    return "\n\n".join(sections)


def by_kind(point: WidthPoint) -> str:
    """Return the run's MLflow requests per step by kind, the run's own apart."""
    kinds = sorted(point.kinds.items(), key=lambda item: -item[1])
    per_step = ", ".join(
        f"{point.per_step(n):.2f} {short(kind)}"
        for kind, n in kinds
        if not kind.startswith(RUN_KINDS)
    )
    per_run = ", ".join(f"{n} {short(kind)}" for kind, n in kinds if kind.startswith(RUN_KINDS))
    return f"{per_step}; per run: {per_run}"


def short(kind: str) -> str:
    """Return a request kind without the API prefix."""
    return kind.removeprefix("/api/2.0/").removesuffix("/")


def history_table(points: list[HistoryPoint]) -> str:
    """Render the history sweep, with the ratio against the smallest experiment."""
    base = points[0].hook_ms_per_step
    lines = [
        "| runs in the experiment | filled in, s | tracker time per step, ms (median; min–max) | "
        "MLflow requests per run | kB the server answered per run | tracker's ZenML store "
        "calls per run (hooks, run start) | vs smallest |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        ratio = p.hook_ms_per_step / base if base else 0.0
        lines.append(
            f"| {p.runs:,} | {p.fill_seconds:.0f} | {spread(p.hook_ms)} | "
            f"{spread([float(n) for n in p.requests])} | {spread(p.response_kb, 1)} | "
            f"{spread([float(n) for n in p.store_calls])} | {ratio:.2f}× (goal ≤ "
            f"{HISTORY_GOAL}×: {verdict(ratio, HISTORY_GOAL)}) |"
        )
    return "\n".join(lines)


def history_kinds(points: list[HistoryPoint]) -> str:
    """State the MLflow requests of one run by kind, and whether they are the same everywhere."""
    from testsupport.benchmark_pipelines import HISTORY_STEPS

    same = all(p.kinds == points[0].kinds for p in points) and all(
        n == points[0].requests[0] for p in points for n in p.requests
    )
    kinds = ", ".join(
        f"{count} {short(kind)}"
        for kind, count in sorted(points[0].kinds.items(), key=lambda item: -item[1])
    )
    verdict_text = (
        "the same in every repetition at every size"
        if same
        else "**not the same in every repetition and size**"
    )
    return (
        f"MLflow requests of one {HISTORY_STEPS}-step run, by kind: {kinds} — {verdict_text}. "
        "`mlflow-artifacts/artifacts` are the steps' outputs (on by default, and here), "
        "sent by the tracker's watcher once ZenML has published each step."
    )


def points_table(results: list[PointsResult]) -> str:
    """Render the per-point sweep."""
    lines = [
        "| how | time per log_metric call, µs | seconds until all points are on the server | "
        "points/s to the server | requests | points delivered |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        delivered = "–" if r.mode == "bare" else spread([float(n) for n in r.delivered])
        rate = "–" if r.mode == "bare" else f"{r.points_per_second:,.0f}"
        lines.append(
            f"| {MODES[r.mode]} | {r.us_per_point:.1f} | {spread(r.seconds, 2)} | {rate} | "
            f"{spread([float(n) for n in r.requests])} | {delivered} |"
        )
    return "\n".join(lines)


def plot(points: list[WidthPoint], path: Path) -> None:
    """Plot tracker time per step against width, one line per pipeline shape."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6.4, 3.6), dpi=100)
    for shape in (DYNAMIC, STATIC):
        tracked = tracked_points(points, shape)
        if tracked:
            axes.plot(
                [p.width for p in tracked],
                [p.hook_ms_per_step for p in tracked],
                marker="o",
                label=shape,
            )
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("steps in the run (width)")
    axes.set_ylabel("tracker time per step, ms (median)")
    axes.set_title("mlflow_plus: tracker time per step against width")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
