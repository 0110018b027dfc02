"""One reader and writer of what ZenML records about the MLflow runs."""

import pytest
from zenml.constants import METADATA_EXPERIMENT_TRACKER_URL

from tracker_flavor.mlflow.connection import Connection
from tracker_flavor.runs import metadata as records
from tracker_flavor.runs.mlflow_runs import Parent

pytestmark = pytest.mark.unit

CONNECTION = Connection("https://bob:pw@mlflow.example.com")
PARENT = Parent("p1", "7", "run", 1234)


def test_the_parent_record_round_trips_without_credentials():
    metadata = records.parent_metadata(CONNECTION, PARENT)
    assert metadata[records.TRACKING_URI_KEY] == "https://mlflow.example.com"
    assert str(metadata[METADATA_EXPERIMENT_TRACKER_URL]) == (
        "https://mlflow.example.com/#/experiments/7/runs/p1?workflowType=machine_learning"
    )
    record = records.read(metadata)
    assert record == records.ParentRecord("p1", "7", "https://mlflow.example.com", 1234)
    assert record.is_for(CONNECTION, "7")


def test_records_of_older_versions_and_other_metadata_are_read_safely():
    assert records.read({}) is None
    assert records.read({records.PARENT_RUN_ID_KEY: 3}) is None
    old = records.read({records.PARENT_RUN_ID_KEY: "p1"})
    assert old == records.ParentRecord("p1", None, None, None)


def test_step_metadata_links_the_step_run_and_names_its_parent():
    metadata = records.step_metadata(CONNECTION, PARENT, "c1")
    assert metadata[records.RUN_ID_KEY] == "c1" and metadata[records.PARENT_RUN_ID_KEY] == "p1"
    assert str(metadata[METADATA_EXPERIMENT_TRACKER_URL]).endswith(
        "/experiments/7/runs/c1?workflowType=machine_learning"
    )


def test_pushed_runs_are_relinked_once_and_only_from_the_pushed_store():
    local, server = "sqlite:////data/mlflow.db", Connection("http://mlflow.team:5000")
    moved = {"p1": ("3", "P1"), "c1": ("3", "C1")}
    pipeline = records.parent_metadata(Connection(local), PARENT)
    relinked = records.moved_parent(pipeline, local, server, moved)
    assert relinked == records.parent_metadata(server, Parent("P1", "3", "", 1234))
    step = records.step_metadata(Connection(local), PARENT, "c1")
    relinked_step = records.moved_step(step, local, server, moved)
    assert relinked_step is not None and relinked_step[records.RUN_ID_KEY] == "C1"
    assert relinked_step[records.PARENT_RUN_ID_KEY] == "P1"
    assert relinked_step[records.TRACKING_URI_KEY] == "http://mlflow.team:5000"
    # Already relinked (the latest record names the server), another store, or not pushed.
    assert records.moved_parent(relinked, local, server, moved) is None
    assert records.moved_step(relinked_step, local, server, moved) is None
    assert records.moved_parent(pipeline, "sqlite:////other.db", server, moved) is None
    assert records.moved_step(step, local, server, {"p1": ("3", "P1")}) is None
    assert records.moved_parent({}, local, server, moved) is None


def ledger(delivered=0, not_delivered=0, unconfirmed=0, rejected=0):
    """A step's values account as its ledger gives it: flat keys."""
    return {
        records.VALUES_DELIVERED_KEY: delivered,
        records.VALUES_NOT_DELIVERED_KEY: not_delivered,
        records.VALUES_UNCONFIRMED_KEY: unconfirmed,
        records.VALUES_REJECTED_KEY: rejected,
    }


def test_a_step_s_counts_are_one_card_without_zeros_unless_something_went_wrong():
    link = records.step_metadata(CONNECTION, PARENT, "c1")
    shown = records.grouped({**link, **ledger(delivered=12)})
    assert list(shown)[0] == METADATA_EXPERIMENT_TRACKER_URL  # the link first
    assert shown == {**link, records.VALUES_KEY: {"delivered": 12}}  # the ids where docs say
    wrong = records.grouped(ledger(delivered=3, rejected=1))
    assert wrong == {
        records.VALUES_KEY: {"delivered": 3, "not_delivered": 0, "unconfirmed": 0, "rejected": 1}
    }
    assert records.grouped({**link, **ledger()}) == link  # nothing logged: no card
    assert records.artifacts_account(3, 0, 0) == {}  # all arrived: nothing to record
    assert records.artifacts_account(0, 1, 0) == {
        records.ARTIFACTS_KEY: {"delivered": 0, "not_delivered": 1, "skipped": 0}
    }


def test_a_step_that_spooled_keeps_the_flat_counts_its_delivery_overwrites():
    spooled = {**ledger(delivered=2), records.VALUES_SPOOLED_KEY: 5, records.SPOOL_KEY: "s3://x"}
    assert records.grouped(spooled) == spooled


def test_counts_are_read_from_cards_and_from_older_flat_keys_alike():
    card = records.grouped({**ledger(delivered=4), **records.artifacts_account(1, 0, 2)})
    counts = records.account(card)
    assert counts[records.VALUES_DELIVERED_KEY] == 4
    assert counts[records.VALUES_REJECTED_KEY] == 0
    assert counts[records.ARTIFACTS_SKIPPED_KEY] == 2
    assert records.account(ledger(delivered=7))[records.VALUES_DELIVERED_KEY] == 7
