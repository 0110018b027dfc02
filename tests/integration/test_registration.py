"""Registering components through ZenML's own CLI: good configs land, bad ones name the fix."""

import subprocess
import sys
from pathlib import Path

import pytest
from zenml.client import Client
from zenml.enums import StackComponentType

pytestmark = pytest.mark.integration


def zenml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "zenml"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_register_through_zenml_cli_and_reject_bad_input(zenml_stack):
    good = zenml(
        "experiment-tracker",
        "register",
        "plus_server",
        "--flavor=mlflow_plus",
        "--tracking_uri=http://127.0.0.1:5001",  # no credentials: allowed, unlike the built-in
    )
    assert good.returncode == 0, good.stdout + good.stderr
    bad = zenml(
        "experiment-tracker",
        "register",
        "plus_bad",
        "--flavor=mlflow_plus",
        "--tracking_uri=http://127.0.0.1:5001",
        "--tracking_username=alice",
    )
    assert bad.returncode != 0
    assert "tracking_password is missing" in bad.stdout + bad.stderr
    names = {
        c.name
        for c in Client()
        .list_stack_components(type=StackComponentType.EXPERIMENT_TRACKER, size=100)
        .items
    }
    assert "plus_server" in names and "plus_bad" not in names


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "https://alice:pw-in-uri-123@mlflow.example.com",
            "tracking_password='{{mlflow.password}}'",
        ),
        ("sqlite:////does/not/exist/x.db", "/does/not/exist, which does not exist"),
    ],
)
def test_register_refuses_credentials_in_the_uri_and_a_missing_sqlite_directory(
    zenml_stack, uri, message
):
    refused = zenml(
        "experiment-tracker",
        "register",
        "plus_uri",
        "--flavor=mlflow_plus",
        f"--tracking_uri={uri}",
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and message in output
    assert "pw-in-uri-123" not in output
    with pytest.raises(KeyError):
        Client().get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "plus_uri")
    assert not Path("/does").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"tracking_uri": "http://127.0.0.1:99999"}, "port '99999', which is not a port number"),
        ({"experiment_name": "x" * 10_000}, "experiment_name is 10000 characters long"),
        ({"tracking_uri": "mlflow.internal:5000"}, "tracking_uri 'mlflow.internal:5000' has"),
        ({"databricks_host": "https://adb.net"}, "set tracking_uri=databricks"),
        ({"experiment_name": ""}, "experiment_name must not be empty"),
        ({"tags": ["epochs"]}, "tags must be a mapping"),
    ],
)
def test_bad_config_is_refused_and_nothing_is_registered(zenml_stack, config, message):
    client = Client()
    with pytest.raises(ValueError, match=message):
        client.create_stack_component(
            name="plus_refused",
            flavor="mlflow_plus",
            component_type=StackComponentType.EXPERIMENT_TRACKER,
            configuration=config,
        )
    with pytest.raises(KeyError):
        client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, "plus_refused")
