"""The tracker module loads what its hooks need, and no model flavor or server code."""

import pytest

pytestmark = pytest.mark.unit

UNNEEDED_BY_THE_TRACKER = (
    "mlflow.sklearn",
    "mlflow.server",
    "mlflow.pytorch",
    "mlflow.tensorflow",
    # The tracker subclasses the built-in's class, nothing else of the integration.
    "zenml.integrations.mlflow.model_deployers",
    "zenml.integrations.mlflow.model_registries",
    "zenml.integrations.mlflow.services",
    "zenml.integrations.mlflow.steps",
)


def test_the_tracker_module_imports_no_model_flavor_or_server_code(fresh_imports):
    assert [
        name for name in fresh_imports.tracker if name.startswith(UNNEEDED_BY_THE_TRACKER)
    ] == []
