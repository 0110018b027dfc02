"""The `mlflow_plus` model registry flavor: ZenML's MLflow registry on an mlflow_plus tracker.

ZenML's own registry validates stacks by the tracker's flavor name (`mlflow`); this one accepts
any tracker that is an `MLFlowExperimentTracker`, which the mlflow_plus tracker is.
"""

from typing import TYPE_CHECKING

from zenml.integrations.mlflow.flavors.mlflow_model_registry_flavor import (
    MLFlowModelRegistryFlavor,
)

from tracker_flavor import FlavorIdentity

if TYPE_CHECKING:
    from zenml.integrations.mlflow.model_registries.mlflow_model_registry import (
        MLFlowModelRegistry,
    )


class MLflowPlusModelRegistryFlavor(FlavorIdentity, MLFlowModelRegistryFlavor):
    """MLflow model registry on the store of the stack's mlflow_plus experiment tracker."""

    @property
    def implementation_class(self) -> type["MLFlowModelRegistry"]:
        """Return the registry class (imports MLflow lazily)."""
        from tracker_flavor.registry import MLflowPlusModelRegistry

        return MLflowPlusModelRegistry
