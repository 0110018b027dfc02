"""`zenml-mlflow migrate`: replace a built-in `mlflow` tracker component by an mlflow_plus one."""

from typing import TYPE_CHECKING, Any

import click

from tracker_flavor import FLAVOR_NAME

from .components import tracker_component
from .output import output_option, print_json

if TYPE_CHECKING:
    from uuid import UUID

    from zenml.models import StackResponse

BUILTIN_FLAVOR = "mlflow"
RENAMED_SUFFIX = "_builtin"
CODE_CHANGES = [
    "settings key 'experiment_tracker.mlflow' -> 'experiment_tracker' (or "
    f"'experiment_tracker.{FLAVOR_NAME}'); the old key still applies, with a deprecation warning",
]


def carried_config(configuration: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split a built-in component's config into the keys mlflow_plus takes and those it drops.

    Values are copied as stored: a `{{secret.key}}` reference stays a reference.
    """
    from tracker_flavor.config.component import MLflowPlusConfig

    kept = {k: v for k, v in configuration.items() if v is not None}
    dropped = sorted(set(kept) - set(MLflowPlusConfig.model_fields))
    return {k: v for k, v in kept.items() if k not in dropped}, dropped


@click.command()
@click.argument("component")
@click.option(
    "--name",
    "new_name",
    help=f"Name of the new {FLAVOR_NAME} component. Default: COMPONENT's own name, so step code "
    f"keeps working; the old component is then renamed COMPONENT{RENAMED_SUFFIX}.",
)
@click.option(
    "--stacks", is_flag=True, help="Also put the new component into every stack using the old one."
)
@click.option("--dry-run", is_flag=True, help="Show what would change, and change nothing.")
@output_option
def migrate(component: str, new_name: str | None, stacks: bool, dry_run: bool, output: str) -> None:
    """Turn a tracker of ZenML's built-in mlflow flavor into an mlflow_plus one, same config.

    With --stacks, a built-in mlflow model registry in those stacks is swapped for an mlflow_plus
    one the same way (renamed old component, new one under its name).

    Example: zenml-mlflow migrate mlflow --stacks --dry-run
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from tracker_flavor.config.component import MLflowPlusConfig

    client = Client()
    kind = StackComponentType.EXPERIMENT_TRACKER
    registry_kind = StackComponentType.MODEL_REGISTRY
    old = tracker_component(component)
    if old.flavor_name != BUILTIN_FLAVOR:
        raise click.ClickException(
            f"experiment tracker {component!r} has flavor {old.flavor_name!r}; only components "
            f"of the built-in {BUILTIN_FLAVOR!r} flavor are migrated."
        )
    for flavor_kind in (kind, registry_kind):
        try:
            client.get_flavor_by_name_and_type(FLAVOR_NAME, flavor_kind)
        except KeyError as error:
            raise click.ClickException(
                f"the {FLAVOR_NAME} {flavor_kind.value} flavor is not registered: run "
                "`zenml-mlflow install` first."
            ) from error
    config, dropped = carried_config(old.configuration)
    try:
        MLflowPlusConfig(**config)
    except ValueError as error:
        raise click.ClickException(f"the configuration does not carry over: {error}") from error
    target = new_name or component
    renamed = f"{component}{RENAMED_SUFFIX}" if target == component else None
    user_stacks = client.list_stacks(component_id=old.id, size=1000).items
    users = [stack.name for stack in user_stacks]
    swapped = users if stacks else []
    registries = builtin_registries(user_stacks) if stacks else []
    plan = {
        "component": component,
        "new_component": target,
        "renamed_to": renamed,
        "configuration": config,
        "dropped_keys": dropped,
        "stacks": swapped,
        "stacks_left_alone": [] if stacks else users,
        "model_registries": {name: f"{name}{RENAMED_SUFFIX}" for name in registries},
        "code_changes": CODE_CHANGES,
        "dry_run": dry_run,
    }
    if not dry_run:
        if renamed:
            client.update_stack_component(component, kind, name=renamed)
        try:
            new = client.create_stack_component(
                name=target, flavor=FLAVOR_NAME, component_type=kind, configuration=config
            )
        except Exception as error:
            if renamed:
                client.update_stack_component(renamed, kind, name=component)
            raise click.ClickException(f"could not create {target!r}: {error}") from error
        new_registries = {name: swap_registry(name) for name in registries}
        for stack_model in user_stacks if stacks else []:
            updates = {kind: [new.id]}
            if (registry := builtin_registry(stack_model)) is not None:
                updates[registry_kind] = [new_registries[registry]]
            client.update_stack(stack_model.id, component_updates=updates)
    if output == "json":
        print_json(plan)
        return
    would = "would " if dry_run else ""
    if renamed:
        click.echo(f"{would}rename {component} ({BUILTIN_FLAVOR}) to {renamed}")
    keys = ", ".join(sorted(config)) or "no keys"
    click.echo(f"{would}register {target} ({FLAVOR_NAME}) with {keys}")
    if dropped:
        click.echo(f"{would}drop keys mlflow_plus does not have: {', '.join(dropped)}")
    for stack in users:
        click.echo(
            f"{would}swap it into stack {stack}"
            if stacks
            else f"stack {stack} keeps the old component (add --stacks to swap)"
        )
    for name in registries:
        renamed_registry = f"{name}{RENAMED_SUFFIX}"
        click.echo(
            f"{would}rename model registry {name} ({BUILTIN_FLAVOR}) to {renamed_registry} and "
            f"register {name} ({FLAVOR_NAME}) in its place in those stacks"
        )
    for change in CODE_CHANGES:
        click.echo(f"in your code: {change}")


def builtin_registry(stack: "StackResponse") -> str | None:
    """Return the name of the stack's model registry if it is of the built-in mlflow flavor."""
    from zenml.enums import StackComponentType

    found = stack.components.get(StackComponentType.MODEL_REGISTRY) or []
    return found[0].name if found and found[0].flavor_name == BUILTIN_FLAVOR else None


def builtin_registries(stacks: "list[StackResponse]") -> list[str]:
    """Return the built-in mlflow model registries of these stacks, each once, in order."""
    names = [builtin_registry(stack) for stack in stacks]
    return list(dict.fromkeys(name for name in names if name is not None))


def swap_registry(name: str) -> "UUID":
    """Rename a built-in mlflow model registry and register an mlflow_plus one under its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    kind = StackComponentType.MODEL_REGISTRY
    old = client.get_stack_component(kind, name, allow_name_prefix_match=False)
    client.update_stack_component(name, kind, name=f"{name}{RENAMED_SUFFIX}")
    try:
        new = client.create_stack_component(
            name=name, flavor=FLAVOR_NAME, component_type=kind, configuration=old.configuration
        )
    except Exception as error:
        client.update_stack_component(f"{name}{RENAMED_SUFFIX}", kind, name=name)
        raise click.ClickException(f"could not create model registry {name!r}: {error}") from error
    return new.id
