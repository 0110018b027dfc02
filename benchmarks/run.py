"""Benchmark mlflow_plus: cost per step against width and history, and cost per logged point.

Starts a real `mlflow server` and a request-counting proxy on 127.0.0.1, registers the
trackers in a private ZenML store, counts the ZenML store calls the tracker makes, runs the
sweeps, prints the tables and writes them, with a plot, to docs/benchmarks.md.

    .venv/bin/python -m benchmarks.run            # about 5 minutes on 2 idle cores
    .venv/bin/python -m benchmarks.run --full     # + wider, more repetitions, points at +20 ms
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.builtin import Comparison
    from benchmarks.context import Bench
    from benchmarks.history import HistoryPoint
    from benchmarks.outputs import OutputsResult
    from benchmarks.points import PointsResult
    from benchmarks.width import WidthPoint

ROOT = Path(__file__).resolve().parents[1]
KEPT_SECTION = "## Reading the profile"
"""Where docs/benchmarks.md's kept part begins: the reading of the profile (written by hand) and
the section measured by the topology tests, not by this run."""
WORK = Path(tempfile.mkdtemp(prefix="mlflow-plus-bench-"))
# Before ZenML is imported: a private, quiet store that the user's set-up never sees.
os.environ["ZENML_CONFIG_PATH"] = str(WORK / "zenml")
os.environ["ZENML_REPOSITORY_PATH"] = str(WORK / "no-repository")
os.environ["ZENML_CUSTOM_SOURCE_ROOT"] = str(ROOT)
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
os.environ["ZENML_LOGGING_VERBOSITY"] = "ERROR"
os.environ["ZENML_ENABLE_RICH_TRACEBACK"] = "false"
os.environ.pop("MLFLOW_TRACKING_URI", None)


@dataclass(frozen=True)
class Plan:
    """What one benchmark run measures."""

    dynamic: tuple[int, ...]
    static: tuple[int, ...]
    history: tuple[int, ...]
    history_reps: int
    points: int
    points_reps: int
    builtin_reps: int
    builtin_point_latencies: tuple[int, ...]
    """Added latencies (ms) at which 2,000 points are logged by both flavors."""
    outputs_reps: int
    untracked_up_to: int
    """Widest run also measured without the tracker (for scale: ZenML's own time per step)."""


DEFAULT = Plan((10, 100, 500), (10, 100), (10, 10_000), 5, 1000, 3, 2, (0,), 2, 100)
PICTURE = "benchmarks-width.png"
FULL = Plan((10, 100, 500, 1000), (10, 100, 300), (10, 10_000), 9, 5000, 3, 3, (0, 20), 5, 1000)


def machine() -> str:
    """Describe the machine and the versions the benchmark ran with."""
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


METHOD = """\
How it is measured (`benchmarks/run.py`, `make bench`):

- One `mlflow server` (SQLite backend, `--workers 1`) with a request-counting proxy in front of
  it on 127.0.0.1; the trackers talk to the proxy. Requests are counted at the proxy, by kind
  (path; every artifact upload is one kind), never estimated. A run is counted until the
  tracker's watcher thread has settled it and ended (the parent's status, the outputs,
  sent after ZenML published each step), so each run's requests are its own. "Per step" is
  what the run asked beyond what a unified run asks once (the experiment's lookup and, for a
  new pipeline, creation; the parent's search, creation and end: "+ per run"), divided by its
  steps.
- ZenML store calls are counted at the store (every public method of ZenML's SQL store wrapped
  in the benchmark process; a store method calling another counts once). A call counts as the
  tracker's when it is made inside one of its hooks (per thread, so exact per step even when
  mapped steps run at once), in `get_pipeline_run_metadata` at run start, or in its watcher
  thread; "store records a step reads" adds up the entities those calls return (a list call
  counts its page's items), which is what grew with the width before.
- **Tracker time per step** is the time inside the tracker's `prepare_step_run`,
  `get_step_run_metadata` and `cleanup_step_run` of each step, measured by wrapping those
  methods; the median over the steps after the first (the first resolves the parent run and
  is shown apart). Mapped steps run on ZenML's thread pool (10 threads), so their hook times
  include waiting for the interpreter lock. ZenML's own time per step is not included; the
  run's wall time, with and without the tracker, is shown for scale, and "+ watcher after it"
  is how long the tracker's watcher thread went on sending outputs and statuses after the run
  returned (one thread per process sends them, after ZenML published each step).
- **History**: the experiment is filled with finished runs carrying the tags the parent
  lookup filters on, written with MLflow's own store models straight into the server's
  database in one transaction; then the 5-step pipeline runs into it alternately with the
  small one. Tracker time per step there includes the run start (where the parent run is
  looked up and created), divided over the 5 steps. "kB the server answered" adds up the
  response bodies: a lookup that listed the experiment's runs would grow with them even at a
  constant number of requests.
- **Per point**: one step calls `mlflow.log_metric` once per point. "Time per call" is the
  loop plus everything until the points are on the server: for the tracker the delivery
  before the step is reported finished, for MLflow's own async logging its
  `flush_async_logging()`. Points delivered are read back from the server directly. MLflow's
  async queue, with its defaults (no `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS`), sends each
  call as its own request from a pool of threads; the tracker's queue sends up to 1,000 values
  per request.
- **Where a step's time goes**: the functions named in its tables are wrapped with timers of
  wall and thread CPU time during the width sweep (a few microseconds a call), and the commits
  of ZenML's SQL store are counted in the part that made them; parts run by other threads
  (the watcher's, the batching thread) are counted there, not in the step's thread.
- **Against the built-in**: "costs more than untracked" is the difference of the runs' median
  wall times divided by the 10 steps; the 2,000 points' time is the loop plus, for mlflow_plus,
  the delivery before the step is reported finished, as above.
- Step logs and artifact metadata are off in these pipelines, which shortens ZenML's own work
  per step for every variant alike.
"""


def main() -> None:
    """Run the benchmark, print the tables and write docs/benchmarks.md and its plot."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="the long version (about an hour)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    plan = FULL if args.full else DEFAULT
    sys.path.insert(0, str(ROOT))
    began = time.perf_counter()
    load_before = os.getloadavg()[0]

    from zenml.client import Client
    from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
        MLFlowExperimentTracker,
    )

    from benchmarks import builtin, history, outputs, points, width
    from benchmarks.context import Bench, register_stacks
    from testsupport.probe import Probe
    from testsupport.proxy import ProxyProcess
    from testsupport.servers import MlflowServer
    from tracker_flavor.tracker import MLflowPlusExperimentTracker

    print("starting mlflow server ...", flush=True)
    server = MlflowServer(WORK / "server")
    server.start()
    found = Results(plan, args.full, load_before, began, args.output)
    try:
        with ExitStack() as stack:
            proxy = stack.enter_context(ProxyProcess(server.url))
            probe = Probe(lambda: proxy.total)
            bench = Bench(server, proxy, probe, register_stacks(proxy.url), WORK)
            stack.enter_context(
                probe.instrumented(
                    MLFlowExperimentTracker,
                    MLflowPlusExperimentTracker,
                    store=type(Client().zen_store),
                )
            )
            warm_up(bench)
            # Quickest first; the document is rewritten after each sweep.
            found.points = points.sweep(bench, plan.points, plan.points_reps)
            found.write()
            found.outputs = outputs.sweep(bench, plan.outputs_reps)
            found.write()
            found.history = history.sweep(bench, plan.history, plan.history_reps)
            found.write()
            found.widths = width.sweep(bench, plan.dynamic, plan.static, plan.untracked_up_to)
            found.write()
            if plan.builtin_reps:
                found.comparison = builtin.sweep(
                    bench, plan.builtin_reps, plan.builtin_point_latencies
                )
                found.write()
    finally:
        server.stop()
    print(found.render())
    print(f"wrote {args.output}")


def warm_up(bench: "Bench") -> None:
    """Run one tracked step first: imports and the first connections are not what is measured."""
    from benchmarks.context import PLUS
    from testsupport.benchmark_pipelines import bench_linear
    from testsupport.probe import wait_for_watcher

    bench.activate(PLUS)
    with bench.probe.run():
        bench_linear(steps=1)
    wait_for_watcher()  # its outputs are sent after the step: not in the first measured run


@dataclass
class Results:
    """The sweeps done so far, and how to write them out."""

    plan: Plan
    full: bool
    load_before: float
    began: float
    output: Path
    points: "list[PointsResult] | None" = None
    outputs: "list[OutputsResult] | None" = None
    history: "list[HistoryPoint] | None" = None
    widths: "list[WidthPoint] | None" = None
    comparison: "Comparison | None" = None

    def write(self) -> None:
        """Write docs/benchmarks.md (and the plot) with the sweeps done so far.

        The measured-elsewhere section (the ZenML server topology's tests) is kept as it is.
        """
        kept = ""
        if self.output.exists():
            old = self.output.read_text()
            if KEPT_SECTION in old:
                kept = "\n" + old[old.index(KEPT_SECTION) :]
        self.output.write_text(self.render().rstrip("\n") + "\n" + kept)

    def render(self) -> str:
        """Render the document."""
        from benchmarks import builtin, outputs, report

        plan = self.plan
        minutes = (time.perf_counter() - self.began) / 60
        sections = [
            "# Benchmarks\n",
            "What `mlflow_plus` costs per step as pipelines widen and experiments fill up, and "
            "per logged point. Reproduce with `make bench` (`.venv/bin/python -m "
            f"benchmarks.run`; this run took {minutes:.1f} minutes"
            f"{' with `--full`' if self.full else ''}).\n",
            f"Machine: {machine()}. 1-minute load average {self.load_before:.1f} at the start "
            f"and {os.getloadavg()[0]:.1f} at the end: other work shared the machine, so "
            "absolute times are inflated and noisy; counts (requests, store calls) are exact, "
            "and ratios between runs taken alternately in the same session are the figures to "
            "read.\n",
        ]
        if self.widths is not None:
            picture = self.output.with_name(PICTURE)
            report.plot(self.widths, picture)
            sections += [
                "## Width\n",
                width_intro(plan),
                report.width_table(self.widths) + "\n",
                report.width_goals(self.widths) + "\n",
                f"![Tracker time per step against width]({PICTURE})\n",
                "## Where a step's time goes\n",
                BREAKDOWN_INTRO,
                report.breakdowns(self.widths) + "\n",
            ]
        if self.history is not None:
            sections += [
                "## History\n",
                history_intro(plan),
                report.history_table(self.history) + "\n",
                report.history_kinds(self.history) + "\n",
            ]
        if self.points is not None:
            sections += [
                "## Per logged point\n",
                f"{plan.points:,} `mlflow.log_metric` calls in one step, {plan.points_reps} "
                "repetitions each, alternating.\n",
                report.points_table(self.points) + "\n",
            ]
        if self.outputs is not None:
            sections += [
                "## Outputs and the model after a step\n",
                "One step whose scikit-learn model output the tracker logs and registers "
                "(`log_model`, `registered_model_name`; lineage and reports at their defaults), "
                f"{plan.outputs_reps} runs per path, alternating. In the process that launched "
                "the step they are sent before its launch returns; a step published by another "
                "process is left to the watcher's polls (measured with the launch hook taken out, "
                "so the watcher is the only path, as it is there).\n",
                outputs.table(self.outputs) + "\n",
            ]
        if self.comparison is not None:
            sections += [
                "## Against the built-in `mlflow` flavor\n",
                f"The 10-step pipeline, {plan.builtin_reps} runs per variant alternating, at 0 "
                "and 20 ms added latency per request (the proxy sleeps before forwarding), and "
                "2,000 points in one step at "
                f"{' and '.join(f'+{ms} ms' for ms in plan.builtin_point_latencies)} "
                "(the built-in sends one request per point). Each run is timed until "
                "`pipeline()` returns, the tracker's outputs and lineage sent.\n",
                builtin.table(self.comparison) + "\n",
                builtin.goals(self.comparison) + "\n",
            ]
        sections.append(METHOD)
        return "\n".join(sections)


BREAKDOWN_INTRO = """\
The widest runs above measured both ways, with the tracker's parts timed in place
(`benchmarks/breakdown.py`: each function below wrapped with a timer of wall and thread CPU time;
a part nested in another counts only inside it, in the same thread). The bold parts run in the
thread that runs the steps one after the other (static) or in each of the 10 pool threads
(dynamic: the parts of concurrent steps overlap in time, so there they do not add up to the
wall time); the watcher's and batching threads run beside the steps. The last row is what the
launching thread spent beyond the untracked run outside the bold parts: ZenML's own extra work
with a tracker in the stack, and waiting for the interpreter lock while the other threads held
it. [Reading the profile](#reading-the-profile) says what these figures led to.
"""


def history_intro(plan: Plan) -> str:
    """Describe the history sweep."""
    from testsupport.benchmark_pipelines import HISTORY_STEPS

    return (
        f"The same {HISTORY_STEPS}-step pipeline into an experiment holding {plan.history[0]:,} "
        f"runs and one holding {plan.history[-1]:,}, {plan.history_reps} runs each, "
        "alternating, after one unrecorded run into each (the first run into an experiment "
        "looks its id up, once per process). The tracker runs with its defaults: unified "
        "(one MLflow run per pipeline run), `async_logging` on, one metric per step, and issue "
        "14's per-step outputs on (`lineage`, `track_reports`). Each run is measured until the "
        "tracker's watcher has settled it (the parent's status, the outputs), so a run's "
        "requests are all its own and none overlaps the next run.\n"
    )


def width_intro(plan: Plan) -> str:
    """Describe the width sweep."""
    return (
        f"A dynamic pipeline mapping one step over {', '.join(map(str, plan.dynamic))} items, "
        f"and a static pipeline with one step and {', '.join(map(str, plan.static))} leaves "
        "after it, each once with the tracker (its defaults: unified, `async_logging` on, "
        "`lineage` and `track_reports` on; one metric per step) and, up to width "
        f"{plan.untracked_up_to}, once without, in the same session. Mapped steps share the "
        "run's MLflow run and its queue, so their metrics often go in one request together "
        "(fewer than 2 `log-batch` per step). "
        "A run has width + 1 steps.\n"
    )


if __name__ == "__main__":
    main()
