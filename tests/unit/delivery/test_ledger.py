"""A logging call is split into request-sized chunks, and a step's ledger accounts for each value."""

import pytest
from mlflow.entities import Metric, Param, RunTag

from tracker_flavor.delivery.ledger import MAX_PARAMS, Call, Chunk, Ledger, chunks_of
from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY as DELIVERED_KEY
from tracker_flavor.runs.metadata import VALUES_SPOOLED_KEY as SPOOLED_KEY
from tracker_flavor.runs.metadata import VALUES_UNCONFIRMED_KEY as UNCONFIRMED_KEY

pytestmark = pytest.mark.unit


def test_a_call_is_split_into_chunks_that_fit_one_request_and_settles_after_the_last():
    call = Call()
    metrics = [Metric("m", i, 0, i) for i in range(250)]
    parts = chunks_of("run", None, call, metrics, [Param("p", "1")], [RunTag("t", "v")])
    assert [part.size for part in parts] == [MAX_PARAMS + 2, MAX_PARAMS, 50]
    assert call.pieces == 3
    for _ in parts[:-1]:
        call.settle()
    assert not call.done.done()
    call.settle()
    assert call.done.result() is None


def test_halves_keep_every_value_and_the_call_waits_for_both():
    call = Call()
    (whole,) = chunks_of("run", None, call, [Metric("m", 1, 0, 0)], [Param("p", "1")], [])
    first, second = whole.halves()
    assert first.size + second.size == whole.size == 2 and call.pieces == 2
    call.settle(ValueError("refused"))
    call.settle()
    assert isinstance(call.done.exception(), ValueError)


def test_only_params_and_tags_have_an_order_that_matters():
    chunk = Chunk("run", None, Call(), [Metric("loss", 1, 0, 0)], [Param("lr", "1")])
    chunk.tags.append(RunTag("stage", "x"))
    assert chunk.ordered_keys == {("param", "lr"), ("tag", "stage")}


def test_the_ledger_counts_what_is_owed_and_what_may_have_arrived():
    ledger = Ledger("run", "http://mlflow", submitted=10, delivered=5, rejected=1)
    sent = Chunk("run", ledger, Call(), [Metric("m", 1, 0, 0)] * 2, sent=True)
    ledger.left = [sent, Chunk("run", ledger, Call(), [Metric("m", 1, 0, 0)] * 2)]
    assert ledger.undelivered == 4 and ledger.unconfirmed == 2
    assert ledger.metadata()[UNCONFIRMED_KEY] == 2 and SPOOLED_KEY not in ledger.metadata()
    assert "4 of 10 points" in str(ledger.failure()) and "2 of them were sent" in str(
        ledger.failure()
    )
    ledger.spooled, ledger.left = 4, []
    assert ledger.failure() is None
    assert ledger.metadata()[SPOOLED_KEY] == 4 and ledger.metadata()[DELIVERED_KEY] == 5
