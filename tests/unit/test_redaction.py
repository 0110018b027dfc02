"""No message shows the credentials of a URI: errors end up in logs and step metadata."""

import pytest
from pydantic import SecretStr

from tracker_flavor.delivery.ledger import Ledger
from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.mlflow.errors import TrackingServerError, explained
from tracker_flavor.mlflow.quiet import RequestNoise

pytestmark = pytest.mark.unit

URI = "https://bob:s3cret@mlflow.example.com"


def test_delivery_errors_do_not_show_credentials():
    ledger = Ledger(
        run_id="r1", uri=URI, submitted=3, delivered=1,
        error=f"API request to {URI}/api/2.0/mlflow/runs/log-batch failed",
    )  # fmt: skip
    failure = ledger.failure()
    assert failure is not None and "s3cret" not in str(failure)
    assert "https://mlflow.example.com" in str(failure)


def test_unexplained_server_errors_lose_the_credentials_of_their_uri():
    connection, noise = Connection(URI), RequestNoise()
    with pytest.raises(TrackingServerError) as error:
        with explained(connection, noise):
            raise ValueError(f"API request to {URI}/api/2.0/mlflow/runs/get failed: odd reply")
    assert "s3cret" not in str(error.value) and "odd reply" in str(error.value)
    with pytest.raises(ValueError, match="no URI here"):
        with explained(connection, noise):
            raise ValueError("no URI here")


def test_a_connection_never_shows_its_secrets():
    connection = Connection(URI, token=SecretStr("tok3n"), password=SecretStr("pa55"))
    assert "tok3n" not in repr(connection) and "pa55" not in repr(connection)
    assert "s3cret" not in connection.shown
