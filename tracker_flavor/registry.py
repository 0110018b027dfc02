"""The `mlflow_plus` model registry class (imports MLflow; the flavor module does not)."""

from typing import TYPE_CHECKING, Any

from zenml.enums import StackComponentType
from zenml.integrations.mlflow.model_registries.mlflow_model_registry import MLFlowModelRegistry
from zenml.stack.stack_validator import StackValidator

from tracker_flavor import FLAVOR_NAME
from tracker_flavor.watcher.models import registrable_source

if TYPE_CHECKING:
    from zenml.model_registries.base_model_registry import (
        ModelRegistryModelMetadata,
        RegistryModelVersion,
    )
    from zenml.stack import Stack


def tracker_problem(tracker: object) -> str | None:
    """Return why a stack's experiment tracker cannot back the registry, or None if it can."""
    from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import (
        MLFlowExperimentTracker,
    )

    if isinstance(tracker, MLFlowExperimentTracker):
        return None
    return (
        f"the {FLAVOR_NAME} model registry keeps models in the MLflow store of the stack's "
        "experiment tracker, which must be an MLflow one: `zenml stack update STACK "
        f"-e TRACKER` with a tracker of flavor {FLAVOR_NAME} (or mlflow)."
    )


class MLflowPlusModelRegistry(MLFlowModelRegistry):
    """ZenML's MLflow model registry, accepting an mlflow_plus tracker; loadable on MLflow 3."""

    def register_model_version(
        self,
        name: str,
        version: str | None = None,
        model_source_uri: str | None = None,
        description: str | None = None,
        metadata: "ModelRegistryModelMetadata | None" = None,
        **kwargs: Any,
    ) -> "RegistryModelVersion":
        """Register a version; a run's LoggedModel (MLflow 3) is registered as `models:/<id>`."""
        if model_source_uri:
            model_source_uri = registrable_source(self.mlflow_client, model_source_uri)
        return super().register_model_version(
            name, version, model_source_uri, description, metadata, **kwargs
        )

    @property
    def validator(self) -> StackValidator | None:
        """Require an MLflow experiment tracker (either flavor) in the stack."""

        def check(stack: "Stack") -> tuple[bool, str]:
            problem = tracker_problem(stack.experiment_tracker)
            return problem is None, problem or ""

        return StackValidator(
            required_components={StackComponentType.EXPERIMENT_TRACKER},
            custom_validation_function=check,
        )
