"""`zenml-mlflow install`: register the flavor, and optionally a tracker in a stack."""

from typing import TYPE_CHECKING, Any

import click

from tracker_flavor import FLAVOR_NAME

from .components import create_stack_with_tracker
from .output import error_message

if TYPE_CHECKING:
    from zenml.models import ComponentResponse

FLAVOR_SOURCE = "tracker_flavor.flavor.MLflowPlusFlavor"
REGISTRY_FLAVOR_SOURCE = "tracker_flavor.model_registry.MLflowPlusModelRegistryFlavor"


def _parse_config(
    _context: click.Context, _param: click.Parameter, pairs: tuple[str, ...]
) -> dict[str, str]:
    """Turn `KEY=VALUE` arguments into a config dict (a click callback: fails before any change)."""
    config = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE")
        config[key] = value
    return config


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Describe how a tracker's config changed, one line per key; secret values never shown."""
    from zenml.utils.secret_utils import is_secret_field

    from tracker_flavor.config.component import MLflowPlusConfig

    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        field = MLflowPlusConfig.model_fields.get(key)
        if field is not None and is_secret_field(field):
            lines.append(f"{key} changed (secret, not shown)")
        else:
            shown = [repr(config[key]) if key in config else "unset" for config in (before, after)]
            lines.append(f"{key}: {shown[0]} -> {shown[1]}")
    return lines


@click.command()
@click.option(
    "--stack",
    "stack_name",
    help="Also register a tracker and put it in this stack "
    "(created from the default stack's orchestrator and artifact store if missing).",
)
@click.option(
    "--tracker",
    "tracker_name",
    default=FLAVOR_NAME,
    show_default=True,
    help="Name of the tracker component: registered with --stack, updated by --config.",
)
@click.option(
    "--config",
    "config",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_config,
    help="Tracker config, e.g. tracking_uri=http://127.0.0.1:5001; "
    "updates the keys of an existing --tracker (without --stack: only an existing one).",
)
@click.option(
    "--activate/--no-activate",
    default=True,
    show_default=True,
    help="Make the --stack the active stack.",
)
def install(
    stack_name: str | None, tracker_name: str, config: dict[str, str], activate: bool
) -> None:
    """Register the mlflow_plus flavors (tracker, model registry) in the active ZenML store.

    Safe to run again. With --config and no --stack, update an existing tracker's config.

    Example: zenml-mlflow install --stack local_mlflow
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    tracker_type = StackComponentType.EXPERIMENT_TRACKER
    for kind, source in (
        (tracker_type, FLAVOR_SOURCE),
        (StackComponentType.MODEL_REGISTRY, REGISTRY_FLAVOR_SOURCE),
    ):
        try:
            client.get_flavor_by_name_and_type(FLAVOR_NAME, kind)
            click.echo(f"flavor {FLAVOR_NAME} ({kind.value}) already registered")
        except KeyError:
            client.create_flavor(source=source, component_type=kind)
            click.echo(f"registered flavor {FLAVOR_NAME} ({kind.value})")
    existing = _existing_tracker(tracker_name)
    if stack_name is None:
        if not config:
            return
        if existing is None:
            raise click.ClickException(
                f"no experiment tracker named {tracker_name!r} to apply --config to: add "
                "--stack NAME to register it in a stack, or name an existing one with --tracker."
            )
        _update_tracker(existing, config)
        return
    if existing is not None and config:
        tracker = _update_tracker(existing, config)
    elif existing is not None:
        tracker = existing
        click.echo(f"tracker {tracker_name} already registered")
    else:
        try:
            tracker = client.create_stack_component(
                name=tracker_name,
                flavor=FLAVOR_NAME,
                component_type=tracker_type,
                configuration=config,
            )
        except ValueError as error:
            raise click.ClickException(error_message(error)) from None
        click.echo(f"registered tracker {tracker_name}")
    try:
        stack = client.get_stack(stack_name, allow_name_prefix_match=False)
        client.update_stack(stack.id, component_updates={tracker_type: [tracker.id]})
        click.echo(f"stack {stack_name}: experiment tracker set to {tracker_name}")
    except KeyError:
        create_stack_with_tracker(stack_name, tracker.id)
        click.echo(f"registered stack {stack_name} with experiment tracker {tracker_name}")
    if activate:
        client.activate_stack(stack_name)
        click.echo(f"active stack: {stack_name}")


def _existing_tracker(name: str) -> "ComponentResponse | None":
    """Return the mlflow_plus tracker of this name, or None; fail if it is of another flavor."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    try:
        tracker = Client().get_stack_component(
            StackComponentType.EXPERIMENT_TRACKER, name, allow_name_prefix_match=False
        )
    except KeyError:
        return None
    if tracker.flavor_name != FLAVOR_NAME:
        raise click.ClickException(
            f"experiment tracker {name!r} exists with flavor {tracker.flavor_name!r}: "
            "choose another --tracker name."
        )
    return tracker


def _update_tracker(tracker: "ComponentResponse", config: dict[str, str]) -> "ComponentResponse":
    """Apply `--config` to an existing tracker component and print what changed."""
    from zenml.client import Client

    try:
        updated = Client().update_stack_component(tracker.id, tracker.type, configuration=config)
    except ValueError as error:
        raise click.ClickException(error_message(error)) from None
    changes = config_changes(tracker.configuration, updated.configuration)
    if not changes:
        click.echo(f"tracker {tracker.name} already registered with this config")
    for change in changes:
        click.echo(f"tracker {tracker.name}: {change}")
    return updated
