"""`zenml-mlflow migrate` turns a built-in `mlflow` component into mlflow_plus, keeping secrets."""

import json

import pytest
from click.testing import CliRunner
from zenml.client import Client
from zenml.enums import StackComponentType

from tracker_flavor.cli.main import cli

pytestmark = pytest.mark.integration

TRACKER = StackComponentType.EXPERIMENT_TRACKER


def test_migrate_keeps_references_and_swaps_stacks(zenml_stack):
    client = Client()
    client.create_secret("team_mlflow", values={"username": "alice", "password": "s3cret"})
    config = {
        "tracking_uri": "https://mlflow.example.com",
        "tracking_username": "{{team_mlflow.username}}",
        "tracking_password": "{{team_mlflow.password}}",
        "nested": True,
    }
    old = client.create_stack_component("legacy", "mlflow", TRACKER, configuration=config)
    default = client.get_stack("default")
    components = {kind: [c[0].id] for kind, c in default.components.items()}
    client.create_stack("legacy_stack", components={**components, TRACKER: [old.id]})

    dry = CliRunner().invoke(cli, ["migrate", "legacy", "--stacks", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        "would rename legacy (mlflow) to legacy_builtin",
        "would register legacy (mlflow_plus) with nested, tracking_password, tracking_uri, "
        "tracking_username",
        "would swap it into stack legacy_stack",
        "in your code: settings key 'experiment_tracker.mlflow' -> 'experiment_tracker' (or "
        "'experiment_tracker.mlflow_plus'); the old key still applies, with a deprecation warning",
    ]
    assert client.get_stack_component(TRACKER, "legacy").flavor_name == "mlflow"

    done = CliRunner().invoke(cli, ["migrate", "legacy", "--stacks", "-o", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["stacks"] == ["legacy_stack"]
    new = client.get_stack_component(TRACKER, "legacy")
    assert new.flavor_name == "mlflow_plus"
    assert {k: v for k, v in new.configuration.items() if k in config} == config
    assert client.get_stack_component(TRACKER, "legacy_builtin").id == old.id
    stack = client.get_stack("legacy_stack")
    assert [c.id for c in stack.components[TRACKER]] == [new.id]

    twice = CliRunner().invoke(cli, ["migrate", "legacy"])
    assert twice.exit_code == 1
    assert "has flavor 'mlflow_plus'; only components of the built-in 'mlflow'" in twice.output


def test_migrate_under_a_new_name_leaves_stacks_without_stacks_flag(zenml_stack):
    client = Client()
    client.create_secret("t", values={"token": "abc"})
    client.create_stack_component(
        "legacy2",
        "mlflow",
        TRACKER,
        configuration={"tracking_uri": "http://127.0.0.1:5001", "tracking_token": "{{t.token}}"},
    )
    result = CliRunner().invoke(cli, ["migrate", "legacy2", "--name", "plus2"])
    assert result.exit_code == 0, result.output
    assert client.get_stack_component(TRACKER, "legacy2").flavor_name == "mlflow"
    assert client.get_stack_component(TRACKER, "plus2").configuration["tracking_uri"] == (
        "http://127.0.0.1:5001"
    )


def test_migrate_swaps_the_builtin_model_registry_and_converts_non_string_tags(zenml_stack):
    client = Client()
    registry_kind = StackComponentType.MODEL_REGISTRY
    old = client.create_stack_component(
        "legacy3", "mlflow", TRACKER, configuration={"tags": {"epochs": 10, "final": True}}
    )
    old_registry = client.create_stack_component("models3", "mlflow", registry_kind, {})
    default = client.get_stack("default")
    components = {kind: [c[0].id] for kind, c in default.components.items()}
    client.create_stack(
        "legacy3_stack",
        components={**components, TRACKER: [old.id], registry_kind: [old_registry.id]},
    )

    result = CliRunner().invoke(cli, ["migrate", "legacy3", "--stacks"])
    assert result.exit_code == 0, result.output
    assert (
        "rename model registry models3 (mlflow) to models3_builtin and register models3 "
        "(mlflow_plus) in its place in those stacks" in result.output
    )
    stack = client.get_stack("legacy3_stack")
    [registry] = stack.components[registry_kind]
    assert (registry.name, registry.flavor_name) == ("models3", "mlflow_plus")
    assert client.get_stack_component(registry_kind, "models3_builtin").id == old_registry.id
    [tracker] = stack.components[TRACKER]
    assert tracker.flavor_name == "mlflow_plus"

    from zenml.stack import StackComponent

    loaded = StackComponent.from_model(client.get_stack_component(TRACKER, "legacy3"))
    assert loaded.config.tags == {"epochs": "10", "final": "True"}
