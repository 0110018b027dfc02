"""Tag keys that tie MLflow runs to ZenML runs and steps."""

PIPELINE_RUN_ID = "zenml.pipeline_run_id"
PIPELINE_NAME = "zenml.pipeline_name"
RUN_NAME = "zenml.run_name"
STACK = "zenml.stack"
STEP_NAME = "zenml.step_name"
STEP_RUN_ID = "zenml.step_run_id"
ATTEMPT = "zenml.attempt"
MAP_INDEX = "zenml.map_index"
LAST_STEP = "zenml.last_step"
FAILED_STEP = "zenml.failed_step"
STEP_INDEX = "zenml.step_index."
"""On the parent in unified mode, `zenml.step_index.<step>`: the MLflow step of its metrics."""
ZENML_VERSION = "zenml"
"""The built-in flavor's marker tag (`zenml: <version>`); kept so its tooling sees our runs too."""


def run_context(
    pipeline_source: str | None, pipeline_name: str, username: str | None
) -> dict[str, str]:
    """Return the tags MLflow's UI shows as "Created by" and "Source": user, pipeline, `JOB`.

    The user follows MLflow's own rule (its `DefaultRunContext`): the tracking username if there
    is one, else the OS user.
    """
    import getpass

    from mlflow.entities import SourceType
    from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER

    if not username:
        try:
            username = getpass.getuser()
        except (ImportError, KeyError, OSError):  # no user name in the environment or passwd
            username = "unknown"
    return {
        MLFLOW_USER: username,
        MLFLOW_SOURCE_NAME: pipeline_source or pipeline_name,
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.JOB),
    }


PUSH_SOURCE = "zenml.push.source_run_id"
"""On a run `zenml-mlflow push` copied: the id of the run it is a copy of, set at creation."""
PUSH_COMPLETE = "zenml.push.complete"
"""Set last, once everything of the run was copied: a later push skips the run."""
