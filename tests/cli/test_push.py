"""`zenml-mlflow push` prints the command that points the tracker at the server, no secret."""

import pytest

from tracker_flavor.cli.push import update_command

pytestmark = pytest.mark.unit


def test_the_printed_command_carries_references_never_credentials():
    command, secret = update_command(
        "mlflow_plus", "https://mlflow.team", {"username": "alice", "password": "s3cret", "token": None},
        None, False,
    )  # fmt: skip
    assert command == (
        "zenml experiment-tracker update mlflow_plus --tracking_uri=https://mlflow.team "
        "'--tracking_username={{mlflow_server.username}}' "
        "'--tracking_password={{mlflow_server.password}}'"
    )
    assert secret == "zenml secret create mlflow_server --username=... --password=..."
    assert "s3cret" not in command + secret and "alice" not in command + secret
    referenced, none = update_command(
        "t", "https://mlflow.team", {"token": "{{team.token}}"}, "/ca.pem", False
    )
    assert referenced.endswith("'--tracking_token={{team.token}}' --tracking_ca_bundle=/ca.pem")
    assert none is None
