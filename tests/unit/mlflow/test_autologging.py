"""Autologging is on for the steps that ask, and back to its state after the last step."""

import threading

import mlflow
import pytest
from mlflow.utils.autologging_utils import autologging_is_disabled

from tracker_flavor.mlflow.autologging import Autologging, current_state
from tracker_flavor.runtime import runtime

pytestmark = pytest.mark.unit


@pytest.fixture
def autologging_off():
    mlflow.autolog(disable=True, silent=True)
    yield
    mlflow.autolog(disable=True, silent=True)


def test_one_step_ending_leaves_autologging_on_for_a_step_still_running(autologging_off):
    """Mapped steps run at once: the first to end must not turn it off for the others."""
    steps = Autologging()
    steps.enter(turn_on=True)
    steps.enter(turn_on=True)
    steps.leave()
    assert not autologging_is_disabled("mlflow")
    steps.leave()
    assert autologging_is_disabled("mlflow") and current_state() == {}
    steps.leave()  # an extra leave is harmless


def test_autologging_a_step_turned_on_itself_is_off_after_it(autologging_off):
    """Else it would stay on in the later steps of the process."""
    steps = Autologging()
    steps.enter(turn_on=False)
    mlflow.autolog(silent=True)  # the step's own code
    steps.leave()
    assert autologging_is_disabled("mlflow")


def test_one_integration_a_step_turned_on_itself_is_off_after_it(autologging_off):
    """`mlflow.sklearn.autolog()` is not turned off by the universal switch."""
    import mlflow.sklearn

    steps = Autologging()
    steps.enter(turn_on=False)
    mlflow.sklearn.autolog(silent=True)
    steps.leave()
    assert autologging_is_disabled("sklearn") and current_state() == {}
    # A later step asking for autologging gets sklearn too: it is not left "chosen off".
    steps.enter(turn_on=True)
    import sklearn.linear_model  # noqa: F401  (MLflow patches an integration on import)

    assert not autologging_is_disabled("sklearn")
    steps.leave()


def test_autologging_the_user_had_on_before_the_steps_stays_as_it_was(autologging_off):
    mlflow.autolog(log_models=False, silent=True)
    before = current_state()
    steps = Autologging()
    steps.enter(turn_on=True)  # on with other options
    steps.leave()
    assert current_state() == before and not autologging_is_disabled("mlflow")


def test_steps_that_switch_nothing_do_not_wait_for_mlflow_calls_in_flight(autologging_off):
    """Mapped steps' starts and ends queued behind every call in flight (found by the bench)."""
    steps = Autologging()
    steps.enter(turn_on=True)  # the first step turned it on
    in_flight, release = threading.Event(), threading.Event()

    def mlflow_call() -> None:
        with runtime.mlflow.autologging.lock.shared():
            in_flight.set()
            release.wait(10)

    caller = threading.Thread(target=mlflow_call)
    caller.start()
    in_flight.wait(5)
    more = threading.Thread(target=lambda: (steps.enter(turn_on=True), steps.leave()))
    more.start()
    more.join(2)
    switched_nothing_without_waiting = not more.is_alive()
    release.set()
    caller.join()
    more.join()
    steps.leave()
    assert switched_nothing_without_waiting
    assert autologging_is_disabled("mlflow")
