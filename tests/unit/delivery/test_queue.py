"""The batching queue delivers everything in few requests and accounts exactly for losses."""

import time
from contextlib import contextmanager

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.rest_store import RestStore
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.rest_utils import MlflowHostCreds

from testsupport.servers import free_port
from tracker_flavor.concurrency.caches import Once
from tracker_flavor.concurrency.locks import ReadersWriterLock
from tracker_flavor.delivery.ledger import Ledger
from tracker_flavor.delivery.queue import WINDOW_SECONDS, BatchingQueue, Ledgers
from tracker_flavor.mlflow.internals import Internals

pytestmark = pytest.mark.unit

FAST = (0.001, 0.004)
"""Backoff for tests: first and longest wait after a failed request."""


@pytest.fixture
def sqlite_store(sqlite_uri, tmp_path):
    return SqlAlchemyStore(sqlite_uri, f"file://{tmp_path}/artifacts")


def new_queue(send, history=lambda run_id, key: [], **options) -> BatchingQueue:
    """Return a queue sending with `send`, with a seam and an autolog lock of its own."""
    return BatchingQueue(send, history, Internals(Once()), ReadersWriterLock(), **options)


def metric(index: int) -> Metric:
    return Metric("loss", index * 0.1, int(time.time() * 1000), index)


def test_thousands_of_single_values_arrive_in_batches_of_at_most_a_thousand(sqlite_store):
    run = sqlite_store.create_run("0", "u", 0, [], "r")
    batches = []

    def log_batch(run_id, metrics, params, tags):
        batches.append(len(metrics) + len(params) + len(tags))
        sqlite_store.log_batch(run_id, metrics, params, tags)

    queue = new_queue(log_batch)
    ledger = Ledger(run.info.run_id, "sqlite")
    queue.open(ledger)
    for index in range(2500):
        queue.log_batch_async(run.info.run_id, [], [], [metric(index)])
    queue.log_batch_async(
        run.info.run_id, [Param(f"p{i}", "v") for i in range(150)], [RunTag("t", "v")], []
    )
    queue.close(ledger)
    queue.stop()

    assert ledger.submitted == ledger.delivered == 2651
    assert ledger.failure() is None
    assert max(batches) <= 1000 and len(batches) <= 5
    assert len(sqlite_store.get_metric_history(run.info.run_id, "loss")) == 2500
    assert len(sqlite_store.get_run(run.info.run_id).data.params) == 150


def test_values_are_sent_within_the_window_without_a_flush(sqlite_store):
    run = sqlite_store.create_run("0", "u", 0, [], "r")
    window = WINDOW_SECONDS / 10  # a short window: the same rule, a tenth of the wait
    queue = new_queue(sqlite_store.log_batch, window=window)
    operations = queue.log_batch_async(run.info.run_id, [], [], [metric(1)])
    deadline = time.monotonic() + window + 2  # slack for a busy machine
    while not sqlite_store.get_metric_history(run.info.run_id, "loss"):
        assert time.monotonic() < deadline, "not sent within the window"
        time.sleep(0.01)
    operations.wait()
    queue.stop()


def test_an_unreachable_store_is_reported_with_the_exact_count(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    store = RestStore(lambda: MlflowHostCreds(f"http://127.0.0.1:{free_port()}"))
    queue = new_queue(store.log_batch, backoff=FAST)
    ledger = Ledger("run1", "http://nowhere", final_wait=0.3)
    queue.open(ledger)
    operations = [queue.log_batch_async("run1", [], [], [metric(i)]) for i in range(1500)]
    queue.close(ledger)
    queue.stop()

    assert ledger.submitted == 1500 and ledger.delivered == 0
    error = ledger.failure()
    assert error is not None
    assert str(error).startswith("1500 of 1500 points")
    # Nothing reached the refusing server: none of it may have arrived; every value is kept.
    assert ledger.unconfirmed == 0 and "may have arrived" not in str(error)
    assert [m.step for chunk in ledger.left for m in chunk.metrics] == list(range(1500))
    with pytest.raises(MlflowException, match="async logging"):
        operations[-1].wait()


class Flaky:
    """A store's log_batch that fails some calls: `fail(call_number)` returns the error or None.

    Calls that `land` write to the real store before failing (their answer is lost).
    """

    def __init__(self, store, fail, land=False):
        self.store, self.fail, self.land = store, fail, land
        self.calls: list[tuple[int, list[int]]] = []

    def __call__(self, run_id, metrics, params, tags):
        number = len(self.calls) + 1
        self.calls.append((len(metrics) + len(params) + len(tags), [m.step for m in metrics]))
        error = self.fail(number)
        if error is None or self.land:
            self.store.log_batch(run_id, metrics, params, tags)
        if error is not None:
            raise error


def lost_answer() -> Exception:
    """An error like MLflow's when a request was sent but no answer came back."""
    return MlflowException("API request failed: RemoteDisconnected('Remote end closed')")


def run_in(store, name="r"):
    return store.create_run("0", "u", 0, [], name).info.run_id


@contextmanager
def step_queue(send, run_id, *, window=0.01, final_wait=5.0):
    """Yield a queue sending with `send` and an open ledger; deliver and stop afterwards."""
    history = (send.store if isinstance(send, Flaky) else send.__self__).get_metric_history
    queue = new_queue(send, history, window=window, backoff=FAST)
    ledger = Ledger(run_id, "sqlite", final_wait=final_wait)
    queue.open(ledger)
    yield queue, ledger
    queue.close(ledger)
    queue.stop()


def test_values_logged_after_failed_batches_are_delivered_in_order(sqlite_store):
    run_id = run_in(sqlite_store)
    send = Flaky(sqlite_store, lambda n: lost_answer() if n <= 3 else None)
    with step_queue(send, run_id) as (queue, ledger):
        for index in range(3000):
            queue.log_batch_async(run_id, [], [], [metric(index)])

    assert ledger.delivered == ledger.submitted == 3000 and ledger.failure() is None
    sent = [step for size, steps in send.calls[3:] for step in steps]
    assert sent == list(range(3000))  # failed batches went back to the head of the queue
    history = sqlite_store.get_metric_history(run_id, "loss")
    assert sorted(point.step for point in history) == list(range(3000))


def test_the_backoff_doubles_up_to_its_cap(sqlite_store):
    run_id = run_in(sqlite_store)
    times: list[float] = []

    def send(run_id, metrics, params, tags):
        times.append(time.monotonic())
        if len(times) <= 6:
            raise lost_answer()
        sqlite_store.log_batch(run_id, metrics, params, tags)

    queue = new_queue(send, window=0.01, backoff=(0.02, 0.08))
    ledger = Ledger(run_id, "sqlite", final_wait=5)
    queue.open(ledger)
    queue.log_batch_async(run_id, [], [], [metric(1)])
    queue.close(ledger)
    queue.stop()

    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == 6 and ledger.delivered == 1
    for gap, wait in zip(gaps, [0.02, 0.04, 0.08, 0.08, 0.08, 0.08], strict=True):
        assert gap >= wait


def test_a_store_that_stays_down_leaves_every_value_on_the_ledger_after_the_final_wait(
    sqlite_store,
):
    run_id = run_in(sqlite_store)
    send = Flaky(sqlite_store, lambda n: lost_answer() if n > 1 else None)
    queue = new_queue(send, window=10, backoff=FAST)
    # Long enough for the first batch to land and the second to be sent, also on a busy machine.
    ledger = Ledger(run_id, "sqlite", final_wait=1.5)
    queue.open(ledger)
    for index in range(1200):
        queue.log_batch_async(run_id, [], [], [metric(index)])
    started = time.monotonic()
    queue.close(ledger)
    assert time.monotonic() - started < 6  # bounded by the final wait (and one request)
    queue.stop()

    assert ledger.delivered == 1000 and ledger.undelivered == 200
    left = [m.step for chunk in ledger.left for m in chunk.metrics]
    assert left == list(range(1000, 1200))
    # They were sent and not answered: the message says they may have arrived.
    assert ledger.unconfirmed == 200
    assert "200 of 1200 points" in str(ledger.failure())
    assert "200 of them were sent without an answer" in str(ledger.failure())


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """MLflow's file store: it keeps every point it is sent, duplicates too."""
    from mlflow.store.tracking.file_store import FileStore

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return FileStore(str(tmp_path / "mlruns"))


@pytest.mark.parametrize("backend", ["sqlite_store", "file_store"])
def test_requests_whose_answers_were_lost_are_resent_and_stored_once(backend, request):
    store = request.getfixturevalue(backend)
    run_id = run_in(store)
    send = Flaky(store, lambda n: lost_answer() if n <= 2 else None, land=True)
    with step_queue(send, run_id, window=10) as (queue, ledger):
        queue.log_batch_async(
            run_id,
            [Param("lr", "0.1")],
            [RunTag("t", "v")],
            [metric(index) for index in range(10)],
        )

    # The same request, twice landed without an answer, then without the points that landed.
    assert [size for size, _ in send.calls] == [12, 2, 2]
    assert ledger.delivered == ledger.submitted == 12 and ledger.failure() is None
    assert ledger.metadata()["mlflow_values_unconfirmed"] == 0
    assert len(store.get_metric_history(run_id, "loss")) == 10  # no duplicate points
    data = store.get_run(run_id).data
    assert data.params == {"lr": "0.1"} and data.tags["t"] == "v"


def test_invalid_values_are_refused_alone_with_one_warning_per_key(sqlite_store, caplog):
    run_id = run_in(sqlite_store)
    send = Flaky(sqlite_store, lambda n: None)
    with step_queue(send, run_id) as (queue, ledger):
        stamp = int(time.time() * 1000)
        for index in range(500):
            queue.log_batch_async(
                run_id, [], [], [metric(index), Metric("bad name!", 1, stamp, index)]
            )
        operations = queue.log_batch_async(
            run_id, [Param("ok", "1"), Param("../up", "2")], [RunTag("", "x")], []
        )

    assert ledger.rejected == 502 and ledger.delivered == 501 and ledger.failure() is None
    assert len(sqlite_store.get_metric_history(run_id, "loss")) == 500
    assert sqlite_store.get_run(run_id).data.params == {"ok": "1"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3
    assert sum("'bad name!'" in w for w in warnings) == 1 and any("'../up'" in w for w in warnings)
    with pytest.raises(MlflowException):
        operations.wait()


def test_a_value_the_store_refuses_is_isolated_and_the_batch_delivered(sqlite_store, caplog):
    run_id = run_in(sqlite_store)
    sqlite_store.log_batch(run_id, [], [Param("lr", "0.1")], [])
    send = Flaky(sqlite_store, lambda n: None)
    with step_queue(send, run_id, window=10) as (queue, ledger):
        for index in range(400):
            queue.log_batch_async(run_id, [], [], [metric(index)])
        queue.log_batch_async(run_id, [Param("lr", "0.2"), Param("other", "1")], [], [])
        for index in range(400, 900):
            queue.log_batch_async(run_id, [], [], [metric(index)])

    assert ledger.rejected == 1 and ledger.delivered == 901 and ledger.failure() is None
    assert len(sqlite_store.get_metric_history(run_id, "loss")) == 900
    assert sqlite_store.get_run(run_id).data.params == {"lr": "0.1", "other": "1"}
    assert len(send.calls) <= 2 + 2 * 10  # halving finds one value in about log2(1000) steps
    assert "'lr'" in caplog.text


def test_the_same_param_twice_travels_in_two_requests(sqlite_store):
    run_id = run_in(sqlite_store)
    send = Flaky(sqlite_store, lambda n: None)
    with step_queue(send, run_id) as (queue, ledger):
        queue.log_batch_async(run_id, [Param("a", "1")], [], [])
        queue.log_batch_async(run_id, [Param("a", "1")], [], [])

    assert len(send.calls) == 2 and ledger.delivered == 2 and ledger.rejected == 0


def test_large_params_and_tags_are_split_below_the_request_size_limit(sqlite_store):
    run_id = run_in(sqlite_store)
    send = Flaky(sqlite_store, lambda n: None)
    with step_queue(send, run_id, window=10) as (queue, ledger):
        for index in range(100):
            queue.log_batch_async(run_id, [Param(f"p{index}", "x" * 6000)], [], [])
            queue.log_batch_async(run_id, [], [RunTag(f"t{index}", "y" * 8000)], [])

    assert ledger.delivered == 200 and ledger.rejected == 0
    assert 2 <= len(send.calls) <= 3


def test_values_logged_into_any_run_count_for_the_step_that_logged_them(sqlite_store):
    step_run, own_run = run_in(sqlite_store, "step"), run_in(sqlite_store, "own")
    with step_queue(sqlite_store.log_batch, step_run) as (queue, ledger):
        queue.open(Ledger(run_in(sqlite_store, "another step"), "sqlite"))  # not the only step
        token = queue.current.set(ledger)
        try:
            queue.log_batch_async(own_run, [], [], [metric(i) for i in range(99)])
            queue.log_batch_async(own_run, [], [], [Metric("bad name!", 1, 0, 0)])
        finally:
            queue.current.reset(token)

    assert ledger.submitted == 100 and ledger.delivered == 99 and ledger.rejected == 1
    assert len(sqlite_store.get_metric_history(own_run, "loss")) == 99


def test_one_steps_refused_value_does_not_fail_the_other_steps_of_a_shared_run(sqlite_store):
    import contextvars
    import threading

    run_id = run_in(sqlite_store)
    sqlite_store.log_batch(run_id, [], [Param("lr", "0.1")], [])
    queue = new_queue(sqlite_store.log_batch, window=0.01, backoff=FAST)
    ledgers = [Ledger(run_id, "sqlite", final_wait=5) for _ in range(8)]
    for ledger in ledgers:
        queue.open(ledger)

    def step(number: int) -> None:
        queue.current.set(ledgers[number])
        for index in range(300):
            stamp = int(time.time() * 1000)
            queue.log_batch_async(run_id, [], [], [Metric(f"m{number}", index, stamp, index)])
            if number == 3 and index == 150:
                queue.log_batch_async(run_id, [Param("lr", "0.2")], [], [])  # refused
        queue.close(ledgers[number])

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(step, n)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.stop()

    assert [ledger.rejected for ledger in ledgers] == [0, 0, 0, 1, 0, 0, 0, 0]
    assert all(ledger.delivered == 300 and ledger.failure() is None for ledger in ledgers)
    for number in range(8):
        assert len(sqlite_store.get_metric_history(run_id, f"m{number}")) == 300


def test_a_value_from_a_thread_of_no_step_is_not_charged_to_a_step_sharing_its_run(sqlite_store):
    """Nobody can tell which of the steps sharing its run it belongs to: none is charged."""
    import threading

    run_id = sqlite_store.create_run("0", "u", 0, [], "r").info.run_id
    queue = new_queue(sqlite_store.log_batch)
    first, second = Ledger(run_id, "sqlite"), Ledger(run_id, "sqlite")
    queue.open(first)
    queue.open(second)
    thread = threading.Thread(target=queue.log_batch_async, args=(run_id, [], [], [metric(1)]))
    thread.start()
    thread.join()
    queue.close(first)
    queue.close(second)
    queue.stop()
    assert first.submitted == second.submitted == 0
    assert len(sqlite_store.get_metric_history(run_id, "loss")) == 1  # delivered all the same


class Recording:
    """A store's log_batch that records which ledger's values each request carried."""

    def __init__(self, store, owners):
        self.store, self.owners = store, owners
        self.requests: list[list[str]] = []

    def __call__(self, run_id, metrics, params, tags):
        self.requests.append(
            sorted({self.owners[value.key] for value in [*metrics, *params, *tags]})
        )
        self.store.log_batch(run_id, metrics, params, tags)


def test_a_step_end_delivers_its_own_values_not_the_other_steps_queues(sqlite_store):
    """Closing a step's ledger sends its own values, not the rest of the shared run's queue."""
    shared, other_run = run_in(sqlite_store, "parent"), run_in(sqlite_store, "child")
    owners = {"theirs": "other", "elsewhere": "other", "loss": "mine"}
    send = Recording(sqlite_store, owners)
    queue = new_queue(send, window=60.0, backoff=FAST)  # not due by the window, nor full
    other, mine = Ledger(shared, "sqlite", final_wait=30), Ledger(shared, "sqlite", final_wait=30)
    queue.open(other)
    queue.open(mine)
    token = queue.current.set(other)
    queue.log_batch_async(shared, [], [], [Metric("theirs", i, 0, i) for i in range(900)])
    queue.log_batch_async(other_run, [], [], [Metric("elsewhere", i, 0, i) for i in range(10)])
    queue.current.set(mine)
    queue.log_batch_async(shared, [], [], [metric(i) for i in range(5)])
    queue.close(mine)

    assert mine.delivered == 5 and mine.failure() is None
    assert other.delivered == 0 and send.requests == [["mine"]]  # nothing of the other step
    queue.current.set(other)
    queue.close(other)
    queue.current.reset(token)
    queue.stop()
    assert other.delivered == 910 and other.failure() is None


def test_a_step_end_first_delivers_other_steps_earlier_params_and_tags_of_its_keys(sqlite_store):
    """Tags keep the last value and params the first: their order across steps is kept."""
    shared = run_in(sqlite_store)
    owners = {"t": "other", "lr": "other", "theirs": "other", "mine": "mine"}
    send = Recording(sqlite_store, owners)
    queue = new_queue(send, window=60.0, backoff=FAST)
    other, mine = Ledger(shared, "sqlite", final_wait=30), Ledger(shared, "sqlite", final_wait=30)
    queue.open(other)
    queue.open(mine)
    token = queue.current.set(other)
    queue.log_batch_async(shared, [Param("lr", "0.1")], [RunTag("t", "theirs")], [])
    queue.log_batch_async(shared, [], [], [Metric("theirs", i, 0, i) for i in range(900)])
    queue.current.set(mine)
    queue.log_batch_async(shared, [Param("lr", "0.2")], [RunTag("t", "mine")], [])
    queue.log_batch_async(shared, [], [], [Metric("mine", 1, 0, 0)])
    queue.close(mine)

    # The other step's param and tag went first (charged to it), its metrics did not go at all.
    assert other.delivered == 2 and mine.delivered == 2 and mine.rejected == 1
    assert sqlite_store.get_run(shared).data.tags["t"] == "mine"
    assert sqlite_store.get_run(shared).data.params["lr"] == "0.1"
    assert sqlite_store.get_metric_history(shared, "theirs") == []
    queue.current.set(other)
    queue.close(other)
    queue.current.reset(token)
    queue.stop()
    assert other.delivered == 902 and other.rejected == 0


def test_a_value_logged_after_its_step_ended_goes_to_its_run_charged_to_no_step(
    sqlite_store, caplog
):
    """A thread that outlived its step holds its closed ledger: not the only running step's."""
    ended_run, running_run = run_in(sqlite_store, "ended"), run_in(sqlite_store, "running")
    queue = new_queue(sqlite_store.log_batch, window=0.01, backoff=FAST)
    ended = Ledger(ended_run, "sqlite", step_name="trainer", final_wait=5)
    running = Ledger(running_run, "sqlite", final_wait=5)
    queue.open(ended)
    queue.close(ended)
    queue.open(running)  # the only step running
    token = queue.current.set(ended)
    try:
        with caplog.at_level("WARNING"):
            queue.log_batch_async(ended_run, [], [], [metric(0)])
            queue.log_batch_async(ended_run, [], [], [metric(1)])
    finally:
        queue.current.reset(token)
    queue.close(running)
    queue.stop()

    assert ended.late == 2 and ended.submitted == 0 and running.submitted == 0
    assert len(sqlite_store.get_metric_history(ended_run, "loss")) == 2
    warnings = [r.getMessage() for r in caplog.records if "after the step ended" in r.getMessage()]
    assert len(warnings) == 1 and "'trainer'" in warnings[0]


def test_a_late_value_under_the_next_steps_queue_is_charged_to_neither_step(sqlite_uri):
    """Each store's queue is replaced once its steps end: the ledger variable outlives them."""
    import contextvars
    import uuid

    from tracker_flavor.runs.metadata import VALUES_DELIVERED_KEY

    seam = Internals(Once())
    ledgers = Ledgers(seam, ReadersWriterLock())
    store = seam.tracking_store(sqlite_uri)
    ended_run, next_run = run_in(store, "ended"), run_in(store, "next")
    ended, following = uuid.uuid4(), uuid.uuid4()
    ended_step = contextvars.Context()
    ended_step.run(ledgers.open, ended, sqlite_uri, ended_run, wait_seconds=5)
    its_thread = ended_step.copy()  # what a thread the step started holds
    ended_step.run(ledgers.close, ended)
    ledgers.open(following, sqlite_uri, next_run, wait_seconds=5)  # the only step running
    try:
        queue = seam.async_queue(store)
        its_thread.run(queue.log_batch_async, ended_run, [], [], [metric(0)])
        assert ledgers.metadata(following)[VALUES_DELIVERED_KEY] == 0
    finally:
        ledgers.close(following)
    assert its_thread.run(ledgers.current.get).late == 1
    assert len(store.get_metric_history(ended_run, "loss")) == 1
