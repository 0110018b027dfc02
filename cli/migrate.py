"""`zenml-mlflow migrate`: replace a built-in `mlflow` tracker component by an mlflow_plus one."""

from typing import Any

import click

from cli.components import tracker_component
from cli.output import output_option, print_json
from tracker_flavor import FLAVOR_NAME

BUILTIN_FLAVOR = "mlflow"
RENAMED_SUFFIX = "_builtin"


def carried_config(configuration: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split a built-in component's config into the keys mlflow_plus takes and those it drops.

    Values are copied as stored: a `{{secret.key}}` reference stays a reference.
    """
    from tracker_flavor.config import MLflowPlusConfig

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

    Example: zenml-mlflow migrate mlflow --stacks --dry-run
    """
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from tracker_flavor.config import MLflowPlusConfig

    client = Client()
    kind = StackComponentType.EXPERIMENT_TRACKER
    old = tracker_component(component)
    if old.flavor_name != BUILTIN_FLAVOR:
        raise click.ClickException(
            f"experiment tracker {component!r} has flavor {old.flavor_name!r}; only components "
            f"of the built-in {BUILTIN_FLAVOR!r} flavor are migrated."
        )
    try:
        client.get_flavor_by_name_and_type(FLAVOR_NAME, kind)
    except KeyError as error:
        raise click.ClickException(
            f"the {FLAVOR_NAME} flavor is not registered: run `zenml-mlflow install` first."
        ) from error
    config, dropped = carried_config(old.configuration)
    try:
        MLflowPlusConfig(**config)
    except ValueError as error:
        raise click.ClickException(f"the configuration does not carry over: {error}") from error
    target = new_name or component
    renamed = f"{component}{RENAMED_SUFFIX}" if target == component else None
    users = [stack.name for stack in client.list_stacks(component_id=old.id, size=1000).items]
    swapped = users if stacks else []
    plan = {
        "component": component,
        "new_component": target,
        "renamed_to": renamed,
        "configuration": config,
        "dropped_keys": dropped,
        "stacks": swapped,
        "stacks_left_alone": [] if stacks else users,
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
        for stack in swapped:
            client.update_stack(stack, component_updates={kind: [new.id]})
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
