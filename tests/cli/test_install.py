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
