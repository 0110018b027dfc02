"""No message shows the credentials of a URI (issue 18: delivery errors printed them in full)."""

import uuid
from datetime import datetime

import pytest
from zenml.enums import StackComponentType

from tracker_flavor.batching import Ledger
from tracker_flavor.config import MLflowPlusConfig
from tracker_flavor.errors import TrackingServerError
from tracker_flavor.tracker import MLflowPlusExperimentTracker

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
    now = datetime.now()
    tracker = MLflowPlusExperimentTracker(
        name="probe", id=uuid.uuid4(), config=MLflowPlusConfig(), flavor="mlflow_plus",
        type=StackComponentType.EXPERIMENT_TRACKER, user=None, created=now, updated=now,
    )  # fmt: skip
    with pytest.raises(TrackingServerError) as error:
        with tracker._explained(URI):
            raise ValueError(f"API request to {URI}/api/2.0/mlflow/runs/get failed: odd reply")
    assert "s3cret" not in str(error.value) and "odd reply" in str(error.value)
    with pytest.raises(ValueError, match="no URI here"):
        with tracker._explained(URI):
            raise ValueError("no URI here")
