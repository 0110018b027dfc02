"""`zenml-mlflow install --stack --tracker --config` on a tracker that already exists."""

import pytest
from click.testing import CliRunner
from zenml.client import Client
from zenml.enums import StackComponentType

from tracker_flavor.cli.main import cli

pytestmark = pytest.mark.integration


def install(*config: str):
    args = ["install", "--stack", "install_test", "--tracker", "install_test", "--no-activate"]
    return CliRunner().invoke(cli, [*args, *(f"--config={pair}" for pair in config)])


def configuration() -> dict:
    return (
        Client()
        .get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "install_test")
        .configuration
    )


def test_config_of_an_existing_tracker_is_applied_and_reported(zenml_stack):
    first = install("tracking_uri=http://127.0.0.1:5999")
    assert first.exit_code == 0, first.output
    assert "registered tracker install_test" in first.output

    changed = install("tracking_uri=http://127.0.0.1:5998", "nested=true", "tracking_token=s3cr3t")
    assert changed.exit_code == 0, changed.output
    assert (
        "tracker install_test: tracking_uri: 'http://127.0.0.1:5999' -> 'http://127.0.0.1:5998'"
        in changed.output
    )
    assert "tracker install_test: nested: unset -> True" in changed.output
    assert "tracker install_test: tracking_token changed (secret, not shown)" in changed.output
    assert "s3cr3t" not in changed.output
    assert configuration()["tracking_uri"] == "http://127.0.0.1:5998"
    assert configuration()["nested"] is True

    same = install("nested=true")
    assert same.exit_code == 0, same.output
    assert "tracker install_test already registered with this config" in same.output

    bad = install("nested=maybe")
    assert bad.exit_code == 1
    assert "nested" in bad.output
    assert configuration()["nested"] is True


def test_config_without_stack_updates_an_existing_tracker_or_says_why_not(zenml_stack):
    runner = CliRunner()
    created = install("tracking_uri=http://127.0.0.1:5997")
    assert created.exit_code == 0, created.output
    updated = runner.invoke(
        cli, ["install", "--tracker", "install_test", "--config", "tracking_uri=http://h.invalid:1"]
    )
    assert updated.exit_code == 0, updated.output
    assert "tracking_uri: 'http://127.0.0.1:5997' -> 'http://h.invalid:1'" in updated.output
    assert configuration()["tracking_uri"] == "http://h.invalid:1"

    missing = runner.invoke(cli, ["install", "--tracker", "nowhere", "--config", "nested=true"])
    assert missing.exit_code == 1
    assert missing.output.endswith(
        "Error: no experiment tracker named 'nowhere' to apply --config to: add --stack NAME to "
        "register it in a stack, or name an existing one with --tracker.\n"
    )
    not_a_pair = runner.invoke(cli, ["install", "--tracker", "install_test", "--config", "foo"])
    assert not_a_pair.exit_code == 2
    assert "Invalid value for '--config': 'foo' is not KEY=VALUE" in not_a_pair.output
    assert "registered" not in not_a_pair.output  # refused before any change


def test_a_refused_config_answers_with_the_reason_alone(zenml_stack):
    new = CliRunner().invoke(
        cli, ["install", "--stack", "refused", "--tracker", "refused", "--no-activate",
              "--config", "tracking_uri=notaurl"],
    )  # fmt: skip
    assert new.exit_code == 1
    assert new.output.splitlines()[-1] == (
        "Error: tracking_uri 'notaurl' has no scheme: use http(s)://HOST:PORT for a tracking "
        "server, 'databricks' for Databricks, or sqlite:///, postgresql://, mysql://, file:/// "
        "for a store, or leave it unset for the embedded store."
    )
    existing = install("nested=maybe")
    assert existing.exit_code == 1
    assert existing.output.splitlines()[-1] == (
        "Error: nested: Input should be a valid boolean, unable to interpret input"
    )
