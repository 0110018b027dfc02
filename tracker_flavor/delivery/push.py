"""Copying a local store's experiments and runs to a tracking server, exactly once.

A copy carries the tag `zenml.push.source_run_id` from its creation on, and `zenml.push.complete`
once its params, tags, full metric histories, datasets, artifacts and status are on the server.
A later push skips complete copies and finishes the others, sending only the metric points they
lack: pushing again, or after a push was killed, copies nothing twice. A run still running in the
source is never complete, so the next push brings its copy up to date. Then the ZenML runs whose
metadata links the source's runs get links to the copies (ZenML's metadata is append-only: the
latest value wins).
"""

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_USER

from tracker_flavor.delivery.points import missing_points
from tracker_flavor.mlflow.batch_limits import MAX_PARAMS, MAX_TAGS, MAX_VALUES, batches
from tracker_flavor.runs import metadata, mlflow_runs, tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Experiment, Metric, Param, Run, RunTag

    from tracker_flavor.mlflow.connection import Connection

ENDED = ("FINISHED", "FAILED", "KILLED")
"""Statuses a run keeps: its copy gets the same and is complete."""
PAGE = 1000


class PushError(ValueError):
    """What was asked cannot be pushed, e.g. an experiment the source does not have."""


@dataclass
class Summary:
    """What a push did."""

    experiments: int = 0
    copied: int = 0
    """Runs copied by this push."""
    finished: int = 0
    """Runs an interrupted push had begun (or still running in the source), completed now."""
    present: int = 0
    """Runs copied completely before: left as they are."""
    running: list[str] = field(default_factory=list)
    """Source runs still running: copied as far as they are; a later push completes them."""
    points: int = 0
    """Metric points sent."""
    artifacts: int = 0
    """Artifact files uploaded."""
    relinked: int = 0
    """ZenML pipeline and step runs whose metadata now links the copies."""
    strays: int = 0
    """Duplicate copies of one run (a creation MLflow's client sent twice) deleted."""
    orphans: list[str] = field(default_factory=list)
    """Runs whose parent run is not pushed (another experiment left out): copied unnested."""
    moved: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Source run id -> (experiment id, run id) of its copy."""
    pipeline_runs: list[str] = field(default_factory=list)
    """The ZenML pipeline runs the pushed runs belong to (their `zenml.pipeline_run_id` tag)."""


def parents_first(runs: Sequence["Run"]) -> list["Run"]:
    """Return the runs in an order where each comes after its parent run, if that is among them."""
    by_id = {run.info.run_id: run for run in runs}

    def depth(run: "Run") -> int:
        seen: set[str] = set()
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        while parent is not None and parent in by_id and parent not in seen:
            seen.add(parent)
            parent = by_id[parent].data.tags.get(MLFLOW_PARENT_RUN_ID)
        return len(seen)

    return sorted(runs, key=depth)


def requests(
    metrics: Sequence["Metric"], params: Sequence["Param"], run_tags: Sequence["RunTag"]
) -> Iterator[tuple[list["Metric"], list["Param"], list["RunTag"]]]:
    """Yield the (metrics, params, tags) of `log-batch` requests within MLflow's limits."""
    rest = list(metrics)
    for params_part, tags_part in zip_longest(
        batches(params, MAX_PARAMS), batches(run_tags, MAX_TAGS), fillvalue=()
    ):
        room = MAX_VALUES - len(params_part) - len(tags_part)
        yield rest[:room], list(params_part), list(tags_part)
        rest = rest[room:]
    for part in batches(rest, MAX_VALUES):
        yield list(part), [], []


def _pages(search: Callable[..., Any], **arguments: Any) -> list[Any]:
    """Return every item of a paged MLflow search."""
    found: list[Any] = []
    token = None
    while True:
        page = search(max_results=PAGE, page_token=token, **arguments)
        found.extend(page)
        if not (token := page.token):
            return found


def copies(client: "MlflowClient", experiment_id: str) -> tuple[dict[str, "Run"], list[str]]:
    """Return the copies a push made in an experiment by source run id, and the strays.

    The copy of a source run is its complete one, else an active one. A stray is another active,
    incomplete copy of the same run: MLflow's client re-sends a creation whose answer was lost,
    which creates the run twice.
    """
    from mlflow.entities import ViewType

    found = _pages(
        client.search_runs,
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{tags.PUSH_SOURCE}` LIKE '%'",
        run_view_type=ViewType.ALL,
        order_by=["attributes.start_time ASC"],
    )
    chosen: dict[str, Run] = {}
    for run in found:
        source = run.data.tags[tags.PUSH_SOURCE]
        if tags.PUSH_COMPLETE in run.data.tags:
            chosen[source] = run
        elif run.info.lifecycle_stage == "active":
            chosen.setdefault(source, run)
    strays = [
        run.info.run_id
        for run in found
        if run.info.lifecycle_stage == "active"
        and tags.PUSH_COMPLETE not in run.data.tags
        and chosen[run.data.tags[tags.PUSH_SOURCE]] is not run
    ]
    return chosen, strays


@dataclass
class Push:
    """One push from a source store's client to a target server's client."""

    source: "MlflowClient"
    target: "MlflowClient"
    summary: Summary = field(default_factory=Summary)

    def experiments(self, names: Sequence[str]) -> list["Experiment"]:
        """Return the source's active experiments, or those named; refuse an unknown name."""
        from mlflow.entities import ViewType

        found = _pages(self.source.search_experiments, view_type=ViewType.ACTIVE_ONLY)
        if not names:
            return found
        known = {experiment.name: experiment for experiment in found}
        if unknown := [name for name in names if name not in known]:
            raise PushError(
                f"the local store has no experiment {', '.join(map(repr, unknown))}: its "
                f"experiments are {', '.join(map(repr, sorted(known)))}."
            )
        return [known[name] for name in dict.fromkeys(names)]

    def run(
        self, experiments: Sequence["Experiment"], progress: Callable[[str], None] | None = None
    ) -> Summary:
        """Copy the experiments' active runs, parents before their children."""
        from mlflow.entities import ViewType

        targets: dict[str, str] = {}
        made: dict[str, Run] = {}
        runs: list[Run] = []
        for experiment in experiments:
            target_id = self.experiment(experiment)
            targets[experiment.experiment_id] = target_id
            found, strays = copies(self.target, target_id)
            made.update(found)
            for stray in strays:
                self.target.delete_run(stray)
            self.summary.strays += len(strays)
            runs += _pages(
                self.source.search_runs,
                experiment_ids=[experiment.experiment_id],
                run_view_type=ViewType.ACTIVE_ONLY,
            )
        self.summary.experiments += len(experiments)
        for run in parents_first(runs):
            if progress is not None:
                progress(run.info.run_name or run.info.run_id)
            self.copy(run, targets[run.info.experiment_id], made.get(run.info.run_id))
        owners = (run.data.tags.get(tags.PIPELINE_RUN_ID) for run in runs)
        self.summary.pipeline_runs = list(dict.fromkeys(owner for owner in owners if owner))
        return self.summary

    def experiment(self, experiment: "Experiment") -> str:
        """Return the id of the target's experiment of the same name, with the source's tags."""
        target_id = mlflow_runs.experiment_id(self.target, experiment.name, None)
        have = self.target.get_experiment(target_id).tags
        for key, value in experiment.tags.items():
            if have.get(key) != value:
                self.target.set_experiment_tag(target_id, key, value)
        return target_id

    def copy(self, run: "Run", experiment_id: str, made: "Run | None") -> None:
        """Copy one run, or finish its copy; skip a complete one."""
        from mlflow.entities import Metric, Param, RunTag

        run_id = run.info.run_id
        if made is not None and tags.PUSH_COMPLETE in made.data.tags:
            self.summary.moved[run_id] = (experiment_id, made.info.run_id)
            self.summary.present += 1
            return
        identity = {tags.PUSH_SOURCE: run_id}
        if (user := run.data.tags.get(MLFLOW_USER)) is not None:
            identity[MLFLOW_USER] = user
        if (parent := run.data.tags.get(MLFLOW_PARENT_RUN_ID)) is not None:
            if parent in self.summary.moved:
                identity[MLFLOW_PARENT_RUN_ID] = self.summary.moved[parent][1]
            else:
                self.summary.orphans.append(run_id)
        if made is None:
            copy_id = self.target.create_run(
                experiment_id,
                start_time=run.info.start_time,
                tags=identity,
                run_name=run.info.run_name,
            ).info.run_id
        else:
            copy_id = made.info.run_id
        self.summary.moved[run_id] = (experiment_id, copy_id)
        skipped = {MLFLOW_PARENT_RUN_ID, tags.PUSH_SOURCE, tags.PUSH_COMPLETE, *identity}
        run_tags = [RunTag(k, v) for k, v in run.data.tags.items() if k not in skipped]
        params = [Param(k, v) for k, v in run.data.params.items()]
        points: list[Metric] = []
        for key in run.data.metrics:
            # Without the source's logged-model and dataset ids, which the server does not have.
            history = [
                Metric(m.key, m.value, m.timestamp, m.step)
                for m in self.source.get_metric_history(run_id, key)
            ]
            if made is not None and key in made.data.metrics:
                history = missing_points(history, self.target.get_metric_history(copy_id, key))
            points += history
        for request in requests(points, params, run_tags):
            self.target.log_batch(copy_id, *request, synchronous=True)
        self.summary.points += len(points)
        if datasets := run.inputs.dataset_inputs if run.inputs else None:
            self.target.log_inputs(copy_id, datasets=datasets)
        self.summary.artifacts += self.artifacts(run, copy_id)
        if run.info.status not in ENDED:
            self.summary.running.append(run_id)
            return
        self.target.set_terminated(copy_id, run.info.status, end_time=run.info.end_time)
        self.target.set_tag(copy_id, tags.PUSH_COMPLETE, "true")
        if made is None:
            self.summary.copied += 1
        else:
            self.summary.finished += 1

    def artifacts(self, run: "Run", copy_id: str) -> int:
        """Upload the run's artifact files to its copy (again after an interruption); count them."""
        from mlflow.utils.file_utils import local_file_uri_to_path
        from mlflow.utils.uri import is_local_uri

        uri = run.info.artifact_uri
        if uri and is_local_uri(uri):  # type: ignore[no-untyped-call]
            return self._upload(local_file_uri_to_path(uri), copy_id)  # type: ignore[no-untyped-call]
        if not self.source.list_artifacts(run.info.run_id):
            return 0
        with tempfile.TemporaryDirectory() as directory:
            local = self.source.download_artifacts(run.info.run_id, "", directory)
            return self._upload(local, copy_id)

    def _upload(self, directory: str, copy_id: str) -> int:
        files = sum(len(names) for _, _, names in os.walk(directory))
        if files:
            self.target.log_artifacts(copy_id, directory)
        return files


def relink(
    pipeline_run_ids: Iterable[str],
    source_uri: str,
    target: "Connection",
    component_id: UUID,
    moved: metadata.Moved,
) -> int:
    """Record links to the copies on the ZenML runs and steps that link the source's runs.

    Runs and steps already relinked (their latest record names the target) are left alone.
    """
    from zenml.client import Client
    from zenml.utils.pagination_utils import depaginate

    client = Client()
    relinked = 0
    for run_id in pipeline_run_ids:
        try:
            run = client.get_pipeline_run(UUID(run_id), hydrate=True)
        except (KeyError, ValueError):
            continue  # deleted in ZenML, or another ZenML store's run
        if (
            found := metadata.moved_parent(run.run_metadata, source_uri, target, moved)
        ) is not None:
            metadata.record_run(component_id, run.id, found)
            relinked += 1
        for step in depaginate(client.list_run_steps, pipeline_run_id=run.id, hydrate=True):
            found = metadata.moved_step(step.run_metadata, source_uri, target, moved)
            if found is not None:
                metadata.record_step(component_id, step.id, found)
                relinked += 1
    return relinked
