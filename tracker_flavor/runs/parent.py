"""The one parent run per ZenML run: found from the cheapest source that knows it, else created.

A parent run is identified by its `zenml.pipeline_run_id` tag, never by its name. Lookups go
from cheapest to dearest: this process's cache, the record in ZenML (pipeline-run metadata), and,
under the cross-process creation lock, a tag search and creation (see docs/design.md). A parent
deleted in MLflow while its ZenML run goes on is replaced the same way.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zenml.logger import get_logger

from tracker_flavor.runs import mlflow_runs
from tracker_flavor.runs.metadata import ParentRecords
from tracker_flavor.runs.mlflow_runs import Parent

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tracker_flavor.mlflow.connection import Connection
    from tracker_flavor.runs.state import RunState

logger = get_logger(__name__)


@dataclass(frozen=True)
class ParentSpec:
    """What the parent run of a ZenML run is: where, named how, tagged with what."""

    pipeline_run_id: str
    experiment_name: str
    run_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    """The pipeline's parameters, logged with the first step of each process (see steps.py)."""
    under: str | None = None
    """The `parent_run_id` setting: the MLflow run the parent goes under, in its experiment."""
    experiment_named: bool = True
    """Whether `experiment_name` was set; if not, `under`'s experiment is the parent's."""


def experiment_id(
    client: "MlflowClient", connection: "Connection", name: str, state: "RunState"
) -> str:
    """Return the id of the experiment `name` (as the store names it), cached for the process."""
    name = connection.experiment_name(name)
    key = (connection.uri, name)
    if (known := state.experiments.get(key)) is not None:
        return known
    # Held across the lookup and creation: one request per experiment and process, not per step.
    with state.locks.hold(("experiment", *key)):
        if (known := state.experiments.get(key)) is None:
            known = mlflow_runs.experiment_id(client, name, connection.artifact_location)
            state.experiments.put(key, known)
        return known


def run_experiment(
    client: "MlflowClient", connection: "Connection", spec: ParentSpec, state: "RunState"
) -> str:
    """Return the experiment of the run `spec.under`, checked once per process.

    MLflow's UI shows a child under its parent only within one experiment, so the parent goes
    into that run's experiment; an `experiment_name` naming another one is refused.
    """
    from mlflow.exceptions import MlflowException

    assert spec.under is not None
    named = connection.experiment_name(spec.experiment_name) if spec.experiment_named else ""
    key = (connection.uri, spec.under, named)
    if (known := state.run_experiments.get(key)) is not None:
        return known
    try:
        run = client.get_run(spec.under)
    except MlflowException as error:
        if not mlflow_runs.is_gone(error):
            raise
        run = None
    if run is None or run.info.lifecycle_stage != "active":
        raise ValueError(
            f"parent_run_id {spec.under} is not an active run of the MLflow store "
            f"{connection.shown}: correct parent_run_id (the id after /runs/ in the run's URL), "
            "restore the run, or remove the setting."
        )
    exp_id = str(run.info.experiment_id)
    if named and (actual := client.get_experiment(exp_id).name) != named:
        raise ValueError(
            f"experiment_name {named!r} conflicts with parent_run_id {spec.under}, which is in "
            f"the experiment {actual!r}: MLflow shows child runs under their parent only within "
            f"one experiment. Remove experiment_name, or set it to {actual!r}."
        )
    state.run_experiments.put(key, exp_id)
    return exp_id


def resolve(
    client: "MlflowClient",
    connection: "Connection",
    spec: ParentSpec,
    records: ParentRecords,
    state: "RunState",
) -> Parent:
    """Return the parent run of the ZenML run: cache, then record, then search or create."""
    exp_id = (
        run_experiment(client, connection, spec, state)
        if spec.under
        else experiment_id(client, connection, spec.experiment_name, state)
    )
    key = (connection.uri, spec.pipeline_run_id)

    def recorded() -> Parent | None:
        record = records.read(spec.pipeline_run_id)
        if record is None or not record.is_for(connection, exp_id):
            return None
        return Parent(record.run_id, exp_id, spec.run_name, record.start_time)

    # Held across the requests: the process's steps of one ZenML run find or create its parent once.
    with state.locks.hold(key):
        if (known := state.parents.get(key)) is not None:
            return known
        parent = recorded()
        if parent is None:
            with records.lock(spec.pipeline_run_id, recorded) as parent:
                if parent is None:
                    existing = mlflow_runs.find_parent_runs(client, exp_id, spec.pipeline_run_id)
                    parent = (
                        Parent.of(existing[0])
                        if existing
                        else mlflow_runs.create_parent(client, exp_id, spec.run_name, spec.tags)
                    )
                    records.write(spec.pipeline_run_id, parent)
        state.parents.put(key, parent)
        return parent


def replace(
    client: "MlflowClient",
    connection: "Connection",
    spec: ParentSpec,
    gone: Parent,
    records: ParentRecords,
    state: "RunState",
) -> Parent:
    """Return a new parent, same name and tags, for one deleted in MLflow (once per process)."""
    key = (connection.uri, spec.pipeline_run_id)

    def recorded() -> Parent | None:
        record = records.read(spec.pipeline_run_id)
        if record is None or record.run_id == gone.run_id:
            return None
        return Parent(record.run_id, gone.experiment_id, spec.run_name, record.start_time)

    # Held across the requests: one replacement per deleted parent and process.
    with state.locks.hold(key):
        known = state.parents.get(key)
        if known is not None and known.run_id != gone.run_id:
            return known  # another step replaced it
        with records.lock(spec.pipeline_run_id, recorded) as parent:
            if parent is None:
                parent = mlflow_runs.create_parent(
                    client, gone.experiment_id, spec.run_name, spec.tags
                )
                records.write(spec.pipeline_run_id, parent)
                logger.warning(
                    "The MLflow parent run %s of ZenML run %s was deleted or is missing: "
                    "logging to a new parent run %s with the same name and tags.",
                    gone.run_id,
                    spec.pipeline_run_id,
                    parent.run_id,
                )
        state.parents.put(key, parent)
        return parent
