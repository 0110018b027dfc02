"""Importing the flavor, as ZenML does for every `zenml` command, is cheap: no MLflow."""

import pytest

pytestmark = pytest.mark.unit


def test_importing_the_flavor_does_not_import_mlflow(fresh_imports):
    assert [name for name in fresh_imports.flavor if name.startswith("mlflow")] == []
