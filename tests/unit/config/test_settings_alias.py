"""The built-in's settings key `experiment_tracker.mlflow` resolves to the mlflow_plus tracker."""

from dataclasses import dataclass

import pytest
from zenml.enums import StackComponentType

from tracker_flavor.concurrency.caches import Once
from tracker_flavor.config import settings_alias
from tracker_flavor.registry import tracker_problem

pytestmark = pytest.mark.unit
TRACKERS = StackComponentType.EXPERIMENT_TRACKER


@dataclass
class Component:
    name: str
    flavor_name: str


def test_the_builtin_key_means_the_only_mlflow_plus_tracker(caplog):
    stack = {TRACKERS: [Component("plus", "mlflow_plus")]}
    once = Once()
    assert settings_alias.aliased_key("experiment_tracker.mlflow", stack, once) == (
        "experiment_tracker:plus"
    )
    assert settings_alias.aliased_key("experiment_tracker.mlflow", stack, once) == (
        "experiment_tracker:plus"
    )


@pytest.mark.parametrize(
    ("key", "trackers"),
    [
        ("experiment_tracker.mlflow_plus", [Component("plus", "mlflow_plus")]),
        ("experiment_tracker.mlflow", [Component("old", "mlflow")]),
        ("experiment_tracker.mlflow", [Component("a", "mlflow_plus"), Component("b", "mlflow")]),
        (
            "experiment_tracker.mlflow",
            [Component("a", "mlflow_plus"), Component("b", "mlflow_plus")],
        ),
        ("experiment_tracker.mlflow", []),
    ],
)
def test_other_keys_and_stacks_are_left_to_zenml(key, trackers):
    assert settings_alias.aliased_key(key, {TRACKERS: trackers}, Once()) is None


def test_only_an_mlflow_tracker_can_back_the_registry():
    assert "must be an MLflow one" in (tracker_problem(None) or "")
    assert "must be an MLflow one" in (tracker_problem(object()) or "")
