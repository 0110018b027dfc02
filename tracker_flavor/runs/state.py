"""What the run model keeps per process: experiment ids, parent runs and the statuses written."""

from tracker_flavor.concurrency.caches import BoundedCache
from tracker_flavor.concurrency.locks import KeyLocks
from tracker_flavor.mlflow.process import MlflowProcess
from tracker_flavor.runs.mlflow_runs import Parent
from tracker_flavor.runs.outcome import ParentStatuses


class RunState:
    """The run model's caches, one lock per parent or experiment being resolved, and statuses."""

    def __init__(self, mlflow: MlflowProcess) -> None:
        self.mlflow = mlflow
        self.experiments: BoundedCache[tuple[str, str], str] = BoundedCache()
        """Experiment ids by (tracking URI, experiment name as the store knows it)."""
        self.run_experiments: BoundedCache[tuple[str, str, str], str] = BoundedCache()
        """Experiment ids of `parent_run_id` runs by (tracking URI, run id, experiment_name set)."""
        self.parents: BoundedCache[tuple[str, str], Parent] = BoundedCache()
        """Parent runs by (tracking URI, ZenML pipeline run id)."""
        self.pipeline_params: BoundedCache[tuple[str, str], bool] = BoundedCache()
        """The parents, by (tracking URI, run id), a step of this process gave the pipeline's
        params; later steps leave them out of their request."""
        self.locks = KeyLocks()
        """Held while one thread resolves an experiment or a parent, or delivers a run's spool."""
        self.statuses = ParentStatuses()
