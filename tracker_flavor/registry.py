"""The `mlflow_plus` model registry class (imports MLflow; the flavor module does not)."""

from typing import TYPE_CHECKING

from zenml.enums import StackComponentType
from zenml.integrations.mlflow.model_registries.mlflow_model_registry import MLFlowModelRegistry
from zenml.stack.stack_validator import StackValidator

from tracker_flavor.model_registry import tracker_problem

if TYPE_CHECKING:
    from zenml.stack import Stack


class MLflowPlusModelRegistry(MLFlowModelRegistry):
    """ZenML's MLflow model registry, accepting an mlflow_plus experiment tracker."""

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
