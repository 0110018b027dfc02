"""What MLflow holds: experiments, parent and step runs, and the tags and params logged on them.

Requests only; which run to use, and when, is decided by parent.py and the step plan.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from zenml.logger import get_logger

from tracker_flavor.mlflow import internals
from tracker_flavor.mlflow.batch_limits import MAX_PARAMS, batches
from tracker_flavor.runs import tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.exceptions import MlflowException

logger = get_logger(__name__)


@dataclass(frozen=True)
class Parent:
    """A ZenML run's parent run, as far as this process knows it."""

    run_id: str
    experiment_id: str
    name: str
    start_time: int | None = None
    """Milliseconds since the epoch; None when only the id is known (a record of old)."""
    status: str | None = None
    """The status MLflow reported when this process fetched or created it."""

    @classmethod
    def of(cls, run: "Run") -> "Parent":
        """Return the parent a fetched or created run is."""
        info = run.info
        return cls(info.run_id, info.experiment_id, info.run_name, info.start_time, info.status)

    def active_run(self) -> "Run":
        """Return the parent as a RUNNING run for MLflow's active-run stack, without a request."""
        from mlflow.entities import Run, RunData

        info = internals.run_info(
            run_id=self.run_id,
            experiment_id=self.experiment_id,
            user_id="",
            status="RUNNING",
            start_time=self.start_time or int(time.time() * 1000),
            end_time=None,
            lifecycle_stage="active",
            run_name=self.name,
        )
        return Run(info, RunData())


def experiment_id(client: "MlflowClient", name: str, artifact_location: str | None) -> str:
    """Return the id of experiment `name`, creating it if needed."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"MLflow experiment {name!r} is deleted: restore it "
            "(`mlflow experiments restore`) or set experiment_name to another name."
        )
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another process created it first.
        again = client.get_experiment_by_name(name)
        if again is None:
            raise
        return str(again.experiment_id)


def find_parent_runs(client: "MlflowClient", exp_id: str, pipeline_run_id: str) -> list["Run"]:
    """Return the active parent runs tagged with `pipeline_run_id`, canonical one first.

    Step runs carry the tag too, and their step's name; a parent may itself be a child (of the
    `parent_run_id` setting's run).
    """
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{tags.PIPELINE_RUN_ID}` = '{pipeline_run_id}'",
        max_results=50,
        order_by=["attributes.start_time ASC"],
    )
    parents = [run for run in runs if tags.STEP_NAME not in run.data.tags]
    return sorted(parents, key=lambda run: (run.info.start_time, run.info.run_id))


def child_runs(client: "MlflowClient", exp_id: str, parent_id: str) -> list["Run"]:
    """Return the child runs of a parent run."""
    return client.search_runs(
        [exp_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'", max_results=1000
    )


def create_parent(
    client: "MlflowClient", exp_id: str, run_name: str, run_tags: Mapping[str, str]
) -> Parent:
    """Create a parent run."""
    return Parent.of(client.create_run(exp_id, run_name=run_name, tags=dict(run_tags)))


def create_step_run(
    client: "MlflowClient",
    parent: Parent,
    step_name: str,
    run_tags: Mapping[str, str],
    start_time: int | None = None,
) -> "Run":
    """Create the child run of one step attempt under the parent run (started now by default)."""
    return client.create_run(
        parent.experiment_id,
        start_time=start_time,
        run_name=step_name,
        tags={**run_tags, MLFLOW_PARENT_RUN_ID: parent.run_id},
    )


def is_gone(error: "MlflowException") -> bool:
    """Tell whether a request failed because its run was deleted or never existed."""
    return error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        error.error_code == "INVALID_PARAMETER_VALUE" and "'active' state" in error.message
    )


def log(
    client: "MlflowClient", run_id: str, run_tags: Mapping[str, str], params: Mapping[str, str]
) -> None:
    """Log tags and params in as few requests as possible; a param conflict only warns."""
    from mlflow.entities import Param, RunTag
    from mlflow.exceptions import MlflowException

    if not run_tags and not params:
        return
    tag_list = [RunTag(key, value) for key, value in run_tags.items()]
    param_list = [Param(key, value) for key, value in params.items()]
    try:
        for number, params_part in enumerate(
            batches(param_list, MAX_PARAMS) if param_list else [[]]
        ):
            client.log_batch(
                run_id,
                params=list(params_part),
                tags=tag_list if number == 0 else [],
                synchronous=True,  # the step's async_logging is for user code only
            )
    except MlflowException as error:
        if error.error_code != "INVALID_PARAMETER_VALUE" or not param_list or is_gone(error):
            raise
        logger.warning(
            "Step parameters were not logged to MLflow run %s: %s", run_id, error.message
        )
        if tag_list:
            client.log_batch(run_id, tags=tag_list, synchronous=True)
