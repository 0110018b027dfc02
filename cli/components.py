"""Look up mlflow_plus tracker components in the active ZenML store."""

from typing import TYPE_CHECKING

import click

from tracker_flavor import FLAVOR_NAME

if TYPE_CHECKING:
    from uuid import UUID

    from zenml.models import ComponentResponse

    from tracker_flavor.tracker import MLflowPlusExperimentTracker


def tracker_component(name: str) -> "ComponentResponse":
    """Return the experiment tracker component with exactly this name; a click error otherwise."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    try:
        return Client().get_stack_component(
            StackComponentType.EXPERIMENT_TRACKER, name, allow_name_prefix_match=False
        )
    except KeyError as error:
        raise click.ClickException(f"no experiment tracker named {name!r}.") from error


def load_tracker(name: str | None) -> "MLflowPlusExperimentTracker":
    """Return the named mlflow_plus tracker, or the active stack's; a click error otherwise."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.stack import StackComponent

    from tracker_flavor.tracker import MLflowPlusExperimentTracker

    client = Client()
    if name is None:
        model = client.active_stack_model.components.get(StackComponentType.EXPERIMENT_TRACKER)
        if not model:
            raise click.ClickException(
                f"the active stack {client.active_stack_model.name!r} has no experiment tracker: "
                "name a component, or run `zenml-mlflow install --stack NAME`."
            )
        component = model[0]
    else:
        component = tracker_component(name)
    if component.flavor_name != FLAVOR_NAME:
        raise click.ClickException(
            f"experiment tracker {component.name!r} is of flavor {component.flavor_name!r}, "
            f"not {FLAVOR_NAME!r}: see `zenml-mlflow migrate`."
        )
    tracker = StackComponent.from_model(component)
    assert isinstance(tracker, MLflowPlusExperimentTracker)
    return tracker


def create_stack_with_tracker(stack_name: str, tracker_id: "UUID") -> None:
    """Register a stack made of the default stack's components plus this experiment tracker."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    default = client.get_stack("default")
    components = {kind: [models[0].id] for kind, models in default.components.items()}
    components[StackComponentType.EXPERIMENT_TRACKER] = [tracker_id]
    client.create_stack(name=stack_name, components=components)
