"""The step plan: what a step's MLflow runs are, decided once from settings and step facts.

Pure functions over plain data (like ZenML's wandb integration builds its run arguments): the
unified/nested and async decisions, the names, tags and params of the parent and the step's run,
how its system metrics are sampled.
`facts_of_step`/`facts_of_run` read the facts off ZenML's objects.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tracker_flavor.runs import inputs, tags
from tracker_flavor.runs.params import step_params
from tracker_flavor.runs.parent import ParentSpec

if TYPE_CHECKING:
    from zenml.config.step_configurations import GroupInfo
    from zenml.config.step_run_info import StepRunInfo
    from zenml.models import PipelineRunResponse, PipelineSnapshotResponse, StepRunResponse

    from tracker_flavor.config.settings import MLflowPlusSettings


ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class PipelineFacts:
    """What the plan needs to know about a ZenML pipeline run."""

    run_id: str
    run_name: str
    pipeline_name: str
    source: str | None = None
    stack: str = ""
    zenml_version: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The pipeline's parameters (`training(C=0.5)`)."""


@dataclass(frozen=True)
class StepFacts:
    """What the plan needs to know about one step attempt."""

    pipeline: PipelineFacts
    step_name: str
    step_run_id: str
    attempt: int
    parameters: Mapping[str, Any] = field(default_factory=dict)
    map_index: int | None = None
    """The step's index in its `.map(...)`; None for a step that is not mapped."""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """The mapped step's scalar input values (its mapped item), recorded like its parameters."""
    position: int | None = None
    """The step's place in a static pipeline's step order (its spec: the same in every process)."""


@dataclass(frozen=True)
class Sampling:
    """How a step's system metrics are sampled (see mlflow/system_metrics.py)."""

    interval_seconds: float
    node: str | None
    """The step's name in unified mode, where steps share the parent run; None in its own run."""


@dataclass(frozen=True)
class StepPlan:
    """The MLflow runs of one step attempt and what is logged on them when it starts."""

    parent: ParentSpec
    nested: bool
    autolog: bool
    async_logging: bool
    step_name: str
    step_tags: Mapping[str, str]
    """The tags of the step's child run (nested mode)."""
    parent_tags: Mapping[str, str]
    """Logged on the parent when the step starts: the last step, and in unified mode the
    step's own `tags` setting."""
    parent_params: Mapping[str, str]
    child_params: Mapping[str, str]
    """Logged on the child run right after it is created (nested, synchronous logging)."""
    queued_params: Mapping[str, str]
    """Sent in the step's first batch instead (nested, async logging): one request less."""
    sampling: Sampling | None
    """System metrics, if the settings ask for them."""
    metric_step: int | None = None
    """MLflow's step of a metric the step's code logs into the shared parent without one
    (unified mode): the step's position, so two steps' values of one key are two points."""


def parent_spec(
    settings: "MLflowPlusSettings", facts: PipelineFacts, user: str | None
) -> ParentSpec:
    """Return the parent run of a pipeline run: its experiment, name, tags, params, own parent."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    params = step_params(facts.parameters) if settings.log_step_parameters else {}
    under = settings.parent_run_id
    return ParentSpec(
        pipeline_run_id=facts.run_id,
        experiment_name=settings.experiment_name or facts.pipeline_name,
        run_name=settings.run_name or facts.run_name,
        under=under,
        experiment_named=settings.experiment_name is not None,
        tags={
            **tags.run_context(facts.source, facts.pipeline_name, user),
            **settings.tags,
            tags.PIPELINE_RUN_ID: facts.run_id,
            tags.PIPELINE_NAME: facts.pipeline_name,
            tags.RUN_NAME: facts.run_name,
            tags.STACK: facts.stack,
            tags.ZENML_VERSION: facts.zenml_version,
            **({MLFLOW_PARENT_RUN_ID: under} if under else {}),
        },
        params=params,
    )


def step_plan(settings: "MLflowPlusSettings", facts: StepFacts, user: str | None) -> StepPlan:
    """Return the plan of one step attempt (its settings name the parent too: it may create it).

    A mapped step gets a run of its own under the parent in unified mode too: the mapped steps
    run side by side and log the same keys, which one shared run would show as one series.
    """
    pipeline = facts.pipeline
    nested = settings.nested or facts.map_index is not None
    step_tags = {
        **tags.run_context(pipeline.source, pipeline.pipeline_name, user),
        **settings.tags,
        tags.PIPELINE_RUN_ID: pipeline.run_id,
        tags.STEP_NAME: facts.step_name,
        tags.STEP_RUN_ID: facts.step_run_id,
        tags.ATTEMPT: str(facts.attempt),
        tags.ZENML_VERSION: pipeline.zenml_version,
    }
    if facts.map_index is not None:
        step_tags[tags.MAP_INDEX] = str(facts.map_index)
    params: dict[str, str] = {}
    if settings.log_step_parameters:
        values = {**facts.parameters, **facts.inputs}
        params = step_params(values, prefix="" if nested else facts.step_name)
    last_step = {tags.LAST_STEP: facts.step_name}
    metric_step = None if nested else facts.position
    shared = {**settings.tags, **last_step}
    if metric_step is not None:
        shared[tags.STEP_INDEX + facts.step_name] = str(metric_step)
    queued = nested and settings.async_logging
    sampling = None
    if settings.log_system_metrics:
        node = None if nested else facts.step_name
        sampling = Sampling(settings.system_metrics_interval_seconds, node)
    return StepPlan(
        parent=parent_spec(settings, pipeline, user),
        nested=nested,
        autolog=settings.autolog,
        async_logging=settings.async_logging,
        step_name=facts.step_name,
        step_tags=step_tags,
        parent_tags=last_step if nested else shared,
        parent_params={} if nested else params,
        child_params=params if nested and not queued else {},
        queued_params=params if queued else {},
        sampling=sampling,
        metric_step=metric_step,
    )


def map_index(step_name: str, group: "GroupInfo | None") -> int | None:
    """Return a mapped step's index, which ZenML puts last in its name (`map:<step>:<index>`)."""
    from zenml.enums import GroupType
    from zenml.execution.pipeline.dynamic.runner import MAP_INVOCATION_ID_PREFIX

    if group is None or group.type != GroupType.MAP:
        return None
    if not step_name.startswith(MAP_INVOCATION_ID_PREFIX):
        return None
    index = step_name.rpartition(":")[2]
    return int(index) if index.isdigit() else None


def position(snapshot: "PipelineSnapshotResponse", step_name: str) -> int | None:
    """Return the step's index in a static pipeline's spec; None in a dynamic pipeline.

    A step process loads only its own step's configuration, but every process has the spec.
    A dynamic pipeline's steps are not known in advance, so none has a stable place.
    """
    spec = snapshot.pipeline_spec
    if snapshot.is_dynamic or spec is None:
        return None
    names = [step.invocation_id for step in spec.steps]
    return names.index(step_name) if step_name in names else None


def launch_position(step_run: "StepRunResponse") -> int:
    """Return how many steps of the step's pipeline run ZenML created before it.

    A dynamic pipeline's step has no place in a spec, but its creation time is the same in
    every process. ZenML's filters compare whole seconds: the steps of earlier seconds are
    counted at the store, those of the step's own second read and ordered by time, then id.
    """
    from zenml.client import Client
    from zenml.constants import FILTERING_DATETIME_FORMAT, PAGE_SIZE_MAXIMUM

    steps = functools.partial(Client().list_run_steps, pipeline_run_id=step_run.pipeline_run_id)
    second = step_run.created.replace(microsecond=0)
    start, end = (t.strftime(FILTERING_DATETIME_FORMAT) for t in (second, second + ONE_SECOND))
    earlier = steps(created=f"lt:{start}", size=1).total
    near = steps(created=f"in:{start},{end}", size=PAGE_SIZE_MAXIMUM).items
    mine = (step_run.created, step_run.id)
    return earlier + sum((other.created, other.id) < mine for other in near)


def facts_of_step(info: "StepRunInfo", nested: bool = False) -> StepFacts:
    """Read the plan's facts off ZenML's step run info (a mapped step's inputs off its store).

    A step of a dynamic pipeline that shares the parent (not `nested`, not mapped) asks the
    store for its position.
    """
    index = map_index(info.pipeline_step_name, info.config.group)
    place = position(info.snapshot, info.pipeline_step_name)
    if place is None and info.snapshot.is_dynamic and not nested and index is None:
        place = launch_position(info.step_run)
    values = {}
    if index is not None:
        from zenml.client import Client

        values = inputs.scalar_inputs(info.step_run, Client().active_stack.artifact_store)
    return StepFacts(
        pipeline=PipelineFacts(
            run_id=str(info.run_id),
            run_name=info.run_name,
            pipeline_name=info.pipeline.name,
            source=_source(info.snapshot),
            stack=_stack(info.snapshot),
            zenml_version=_zenml_version(),
            parameters=info.pipeline.parameters or {},
        ),
        step_name=info.pipeline_step_name,
        step_run_id=str(info.step_run_id),
        attempt=info.step_run.version,
        parameters=info.config.parameters,
        map_index=index,
        inputs=values,
        position=place,
    )


def facts_of_run(run: "PipelineRunResponse") -> PipelineFacts:
    """Read the plan's facts off a ZenML pipeline run."""
    snapshot = run.snapshot
    return PipelineFacts(
        run_id=str(run.id),
        run_name=run.name,
        pipeline_name=snapshot.pipeline_configuration.name if snapshot else "",
        source=_source(snapshot),
        stack=_stack(snapshot),
        zenml_version=_zenml_version(),
        parameters=(snapshot.pipeline_configuration.parameters if snapshot else None) or {},
    )


def _source(snapshot: "PipelineSnapshotResponse | None") -> str | None:
    spec = snapshot.pipeline_spec if snapshot else None
    return spec.source.import_path if spec and spec.source else None


def _stack(snapshot: "PipelineSnapshotResponse | None") -> str:
    return snapshot.stack.name if snapshot and snapshot.stack else ""


def _zenml_version() -> str:
    """Return the running ZenML version (the built-in flavor's marker tag value)."""
    import zenml

    return str(zenml.__version__)


def tracking_user() -> str | None:
    """Return the tracking username MLflow's run context would use (environment, then file)."""
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username
